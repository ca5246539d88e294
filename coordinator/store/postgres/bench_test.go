package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sportsintel/enrich/coordinator/store"
	"github.com/sportsintel/enrich/coordinator/store/postgres"
	"github.com/sportsintel/enrich/coordinator/store/postgres/pgtest"
	"github.com/sportsintel/enrich/coordinator/store/storetest"
)

// go test -bench ClaimAndReport ./coordinator/store/postgres (with ENRICH_TEST_POSTGRES set):
// one op is one entity leased and its result committed, in groups as the dispatcher and the
// committer form them; each run gets a schema of its own.
func BenchmarkClaimAndReport(b *testing.B) {
	for _, group := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("group=%d", group), func(b *testing.B) {
			storetest.Bench(b, func(b *testing.B) store.Store {
				st, err := postgres.Open(context.Background(), pgtest.Schema(b))
				if err != nil {
					b.Fatal(err)
				}
				return st
			}, group)
		})
	}
}

package invariant_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/coordinator/store"
	"github.com/sportsintel/enrich/coordinator/store/invariant"
	"github.com/sportsintel/enrich/coordinator/store/sqlite"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// doctored serves a real store's data with one part altered, to prove the checker notices.
type doctored struct {
	store.Store
	events func([]*store.Event) []*store.Event
	items  func([]*store.Item) []*store.Item
}

func (d doctored) Events(ctx context.Context, id string) ([]*store.Event, error) {
	ev, err := d.Store.Events(ctx, id)
	if err != nil || d.events == nil {
		return ev, err
	}
	return d.events(ev), nil
}

func (d doctored) ListItems(ctx context.Context, p store.ListItemsParams) ([]*store.Item, error) {
	its, err := d.Store.ListItems(ctx, p)
	if err != nil || d.items == nil {
		return its, err
	}
	return d.items(its), nil
}

// history builds a finished batch: e1 retried once then succeeded, e2 failed after its budget of
// two attempts, e3 succeeded by a late result over a newer lease.
func history(t *testing.T) store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	var items []store.NewItem
	for _, id := range []string{"e1", "e2", "e3"} {
		items = append(items, store.NewItem{EntityID: id, EntityType: "Club", Name: id, InstanceType: "entities",
			Priority: store.PriorityNormal, Entity: []byte(`{}`), MaxAttempts: 2})
	}
	require.NoError(t, st.CreateBatch(ctx, store.CreateBatchParams{ID: "b", CreatedAt: t0, Items: items}))
	require.NoError(t, st.LaunchBatch(ctx, store.LaunchBatchParams{ID: "b", Now: t0}))
	claim := func(now time.Time, n int) []*store.Item {
		got, err := st.Claim(ctx, store.ClaimParams{AgentID: "a", SessionID: "s", InstanceTypes: []string{"entities"}, Limit: n,
			LeaseTTL: time.Minute, Now: now})
		require.NoError(t, err)
		return got
	}
	ref := func(it *store.Item) store.LeaseRef { return store.LeaseRef{ItemID: it.ID, Token: it.Token} }
	report := func(now time.Time, done []*store.Item, failed []*store.Item) {
		p := store.ReportParams{Now: now, RetryDelay: func(int) time.Duration { return 0 }}
		for _, it := range done {
			p.Completions = append(p.Completions, store.Completion{Lease: ref(it), AgentID: "a", Dossier: []byte(`{}`)})
		}
		for _, it := range failed {
			p.Failures = append(p.Failures, store.Failure{Lease: ref(it), AgentID: "a", Retryable: true, Message: "boom"})
		}
		_, err := st.Report(ctx, p)
		require.NoError(t, err)
	}
	first := claim(t0, 3)
	report(t0, nil, first[:2])
	// e3's first lease expires, it is granted again, then the first lease's result arrives.
	later := t0.Add(2 * time.Minute)
	_, err = st.ReapExpired(ctx, store.ReapParams{Now: later, RetryDelay: func(int) time.Duration { return 0 }})
	require.NoError(t, err)
	second := claim(later, 3)
	require.Len(t, second, 3)
	report(later, []*store.Item{second[0], first[2]}, []*store.Item{second[1]})
	b, err := st.GetBatch(ctx, "b")
	require.NoError(t, err)
	require.Equal(t, store.BatchCompletedWithFailures, b.State)
	return st
}

func check(t *testing.T, st store.Store) *invariant.Report {
	t.Helper()
	rep, err := invariant.Check(context.Background(), st, "b")
	require.NoError(t, err)
	return rep
}

func TestCleanHistoryHolds(t *testing.T) {
	rep := check(t, history(t))
	require.NoError(t, rep.Err())
	require.Equal(t, 3, rep.Items)
	require.Equal(t, 2, rep.Succeeded)
	require.Equal(t, 1, rep.Failed)
	require.Equal(t, 6, rep.Grants)
	require.Equal(t, 3, rep.Retries, "two failures and one expiry")
	require.Equal(t, 1, rep.LateWins)
	require.Equal(t, 1, rep.Superseded)
}

func TestViolationsAreFound(t *testing.T) {
	tests := map[string]struct {
		events func([]*store.Event) []*store.Event
		items  func([]*store.Item) []*store.Item
		want   string
	}{
		"second accepted result": {
			events: func(ev []*store.Event) []*store.Event {
				for _, e := range ev {
					if e.Kind == store.EventSucceeded {
						dup := *e
						dup.ID += 1000
						return append(ev, &dup)
					}
				}
				return ev
			},
			want: "a second result was accepted",
		},
		"grant not higher": {
			events: func(ev []*store.Event) []*store.Event {
				var seen bool
				for _, e := range ev {
					if e.Kind == store.EventGranted && e.Attempt == 2 && !seen {
						e.Token = 1
						seen = true
					}
				}
				return ev
			},
			want: "is not higher than the previous",
		},
		"lost attempt": {
			events: func(ev []*store.Event) []*store.Event {
				// Drop the first failure report: a lease granted and never accounted for.
				for i, e := range ev {
					if e.Kind == store.EventRetrying {
						return append(ev[:i:i], ev[i+1:]...)
					}
				}
				return ev
			},
			want: "was still open",
		},
		"failed before its budget": {
			items: func(its []*store.Item) []*store.Item {
				for _, it := range its {
					if it.State == store.ItemFailed {
						it.MaxAttempts = 3
					}
				}
				return its
			},
			want: "its budget is 3",
		},
		"result never stored": {
			items: func(its []*store.Item) []*store.Item {
				for _, it := range its {
					if it.State == store.ItemSucceeded {
						it.State = store.ItemPending
						break
					}
				}
				return its
			},
			want: "after the batch ended",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rep := check(t, doctored{Store: history(t), events: tc.events, items: tc.items})
			require.Error(t, rep.Err())
			require.Contains(t, rep.Err().Error(), tc.want)
		})
	}
}

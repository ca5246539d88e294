// Package pgtest gives tests a real PostgreSQL database of their own: a fresh schema in the
// cluster named by ENRICH_TEST_POSTGRES (scripts/postgres.sh starts one; `make test` does so).
//
// A test that needs PostgreSQL fails when the variable is missing, so a suite run without the
// database cannot pass by skipping. Set ENRICH_SKIP_POSTGRES=1 to skip those tests on purpose.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable holding the test cluster's URL.
const EnvURL = "ENRICH_TEST_POSTGRES"

// EnvSkip, set to 1, skips the PostgreSQL tests instead of failing them.
const EnvSkip = "ENRICH_SKIP_POSTGRES"

// URL returns the test cluster's URL, failing (or, with ENRICH_SKIP_POSTGRES=1, skipping) the
// test when there is none.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u != "" {
		return u
	}
	if os.Getenv(EnvSkip) == "1" {
		t.Skipf("%s=1: skipping a test that needs PostgreSQL", EnvSkip)
	}
	t.Fatalf("%s is not set: start a cluster with `eval \"$(scripts/postgres.sh start)\"` (make test does), "+
		"or set %s=1 to skip the PostgreSQL tests", EnvURL, EnvSkip)
	return ""
}

// Schema creates an empty schema for the test, dropped when it ends, and returns a URL whose
// connections use it (search_path), so tests running in parallel never see each other's rows.
func Schema(t testing.TB) string {
	t.Helper()
	base := URL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to the test PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvURL, err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

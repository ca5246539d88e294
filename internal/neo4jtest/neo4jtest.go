// Package neo4jtest gives tests the Neo4j server that `make test` starts (scripts/neo4j.sh).
//
// Policy: a test that needs Neo4j fails when NEO4J_URI is unset, so a run that forgot the server
// cannot pass by skipping. Outside `make test`, set ENRICH_TEST_NO_NEO4J=1 to skip those tests
// on purpose (go test then reports them as skipped, never as passed).
package neo4jtest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
)

// Conn is the server's address and credentials.
type Conn struct{ URI, User, Password string }

// Require returns the test server or stops the test: Skip with ENRICH_TEST_NO_NEO4J=1, Fatal
// otherwise.
func Require(t testing.TB) Conn {
	t.Helper()
	uri := os.Getenv("NEO4J_URI")
	if uri == "" {
		if os.Getenv("ENRICH_TEST_NO_NEO4J") == "1" {
			t.Skip("ENRICH_TEST_NO_NEO4J=1: skipping a test that needs Neo4j")
		}
		t.Fatal("NEO4J_URI is not set: run `make test`, or `eval \"$(scripts/neo4j.sh start)\"` first " +
			"(ENRICH_TEST_NO_NEO4J=1 skips tests that need Neo4j)")
	}
	return Conn{URI: uri, User: os.Getenv("NEO4J_USER"), Password: os.Getenv("NEO4J_PASSWORD")}
}

// Namespace returns a fresh label prefix. Tests share one server (Community Edition has one user
// database), so each test writes under its own labels and never sees another test's nodes.
func Namespace(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "T" + hex.EncodeToString(b)
}

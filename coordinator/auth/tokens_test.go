package auth

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	adminSecret  = "admin-secret-0123456789"
	viewerSecret = "viewer-secret-0123456789"
	agentSecret  = "agent-secret-0123456789"
)

func writeTokens(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

func TestParseTokenLines(t *testing.T) {
	t.Parallel()
	ids, err := ParseTokens("tokens", []byte(`# role name hash
admin ops `+Hash(adminSecret)+`
viewer grafana `+Hash(viewerSecret)+`

agent fleet `+Hash(agentSecret)+` agent_ids=fleet-*,spare
admin ops `+Hash("second-admin-secret-xx")+`
`))
	require.NoError(t, err)
	require.Len(t, ids, 4, "several tokens per name and per role")
	require.Equal(t, &Identity{Name: "ops", Role: RoleAdmin}, ids[Hash(adminSecret)])
	agent := ids[Hash(agentSecret)]
	require.True(t, agent.MayUseAgentID("fleet-7"))
	require.True(t, agent.MayUseAgentID("spare"))
	require.False(t, agent.MayUseAgentID("spare-2"))
	require.False(t, agent.MayUseAgentID("fleet"))
	require.False(t, (&Identity{Name: "a1", Role: RoleAgent}).MayUseAgentID("a2"))
	require.True(t, (&Identity{Name: "a1", Role: RoleAgent}).MayUseAgentID("a1"))
}

func TestParseTokenYAML(t *testing.T) {
	t.Parallel()
	ids, err := ParseTokens("tokens.yaml", []byte(`# tokens
tokens:
  - {name: ops, role: admin, hash: "`+Hash(adminSecret)+`"}
  - name: fleet
    role: agent
    hash: "`+Hash(agentSecret)+`"
    agent_ids: [a1, a2]
`))
	require.NoError(t, err)
	require.Equal(t, &Identity{Name: "fleet", Role: RoleAgent, AgentIDs: []string{"a1", "a2"}}, ids[Hash(agentSecret)])
}

func TestParseTokenErrors(t *testing.T) {
	t.Parallel()
	h := Hash(adminSecret)
	for body, want := range map[string]string{
		"admin ops":                                              "tokens:1: want \"role name sha256:hex [agent_ids=a,b]\", got 2 fields",
		"root ops " + h:                                          `tokens:1: role "root": want agent, viewer or admin`,
		"admin ops sha256:abc":                                   "tokens:1: hash: want sha256: and 64 lower-case hex digits",
		"admin ../x " + h:                                        `tokens:1: name "../x"`,
		"admin ops " + h + "\nviewer v " + h:                     "tokens:2: the same token hash is listed twice",
		"admin ops " + h + "\nviewer ops " + Hash("x"):           `tokens:2: "ops" already has role admin`,
		"viewer v " + h + " agent_ids=a":                         "agent_ids only apply to role agent",
		"agent a " + h + " ids=a":                                "fourth field must be agent_ids=",
		"agent a " + h + " agent_ids=a/b":                        `agent id "a/b"`,
		"tokens:\n  - {name: a, role: admin, hash: x, extra: 1}": "field extra not found",
	} {
		_, err := ParseTokens("tokens", []byte(body))
		require.ErrorContains(t, err, want, body)
		require.NotContains(t, err.Error(), h[len(HashPrefix):], "errors never echo a hash")
	}
	_, err := LoadTokens(writeTokens(t, "# nothing\n"))
	require.ErrorContains(t, err, "no tokens")
}

func TestTokensReloadAndRevoke(t *testing.T) {
	t.Parallel()
	path := writeTokens(t, "admin ops "+Hash(adminSecret)+"\nviewer v "+Hash(viewerSecret)+"\n")
	tok, err := LoadTokens(path)
	require.NoError(t, err)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	tok.now = func() time.Time { return time.Unix(0, clock.Load()) }
	var reloads atomic.Int32
	tok.OnReload = func(int, error) { reloads.Add(1) }

	id, ok := tok.Lookup(viewerSecret)
	require.True(t, ok)
	require.Equal(t, "v", id.Name)
	_, ok = tok.Lookup("wrong")
	require.False(t, ok)

	// Revoke the viewer by editing the file: picked up at the next check, no signal needed.
	require.NoError(t, os.WriteFile(path, []byte("admin ops "+Hash(adminSecret)+"\n# viewer revoked\n"), 0o600))
	clock.Add(int64(CheckInterval))
	_, ok = tok.Lookup(viewerSecret)
	require.False(t, ok, "a revoked token stops working")
	_, ok = tok.Lookup(adminSecret)
	require.True(t, ok)
	require.Equal(t, int32(1), reloads.Load())

	// A broken file keeps the last good set.
	require.NoError(t, os.WriteFile(path, []byte("admin ops nothash\n"), 0o600))
	require.Error(t, tok.Reload())
	_, ok = tok.Lookup(adminSecret)
	require.True(t, ok)
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	tok, err := LoadTokens(writeTokens(t, "admin ops "+Hash(adminSecret)+"\nviewer v "+Hash(viewerSecret)+"\nagent a "+Hash(agentSecret)+"\n"))
	require.NoError(t, err)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := IdentityFrom(r.Context()); id != nil {
			w.Header().Set("X-Identity", id.Name)
		}
		w.WriteHeader(http.StatusOK)
	})
	srv := httptest.NewServer(NewGuard(tok).Middleware(ok))
	t.Cleanup(srv.Close)
	open := httptest.NewServer(NewGuard(nil).Middleware(ok))
	t.Cleanup(open.Close)

	get := func(base, path string, set func(*http.Request)) *http.Response {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		require.NoError(t, err)
		if set != nil {
			set(req)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res
	}
	bearer := func(s string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+s) }
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		require.Equal(t, http.StatusOK, get(srv.URL, p, nil).StatusCode, p)
	}
	for _, p := range []string{"/", "/api/batches", "/metrics", "/dossier", "/debug/pprof/"} {
		res := get(srv.URL, p, nil)
		require.Equal(t, http.StatusUnauthorized, res.StatusCode, p)
		require.Contains(t, res.Header.Get("WWW-Authenticate"), "Basic realm=")
		require.Equal(t, http.StatusUnauthorized, get(srv.URL, p, bearer("nope-nope-nope-nope")).StatusCode, p)
		require.Equal(t, http.StatusForbidden, get(srv.URL, p, bearer(agentSecret)).StatusCode, "agents see no dashboard: %s", p)
		require.Equal(t, http.StatusOK, get(srv.URL, p, bearer(adminSecret)).StatusCode, p)
		require.Equal(t, http.StatusOK, get(open.URL, p, nil).StatusCode, "auth off: %s", p)
	}
	res := get(srv.URL, "/api/agents", bearer(viewerSecret))
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "v", res.Header.Get("X-Identity"))
	require.Equal(t, http.StatusForbidden, get(srv.URL, "/debug/pprof/", bearer(viewerSecret)).StatusCode, "profiles are admin only")
	basic := func(r *http.Request) { r.SetBasicAuth("anyone", viewerSecret) }
	require.Equal(t, http.StatusOK, get(srv.URL, "/", basic).StatusCode, "a browser sends the token as a Basic password")
}

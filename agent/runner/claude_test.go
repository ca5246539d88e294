package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/agent/runner"
	"github.com/sportsintel/enrich/prompts"
	"github.com/sportsintel/enrich/schemas"
)

// fakeClaude is the path of testdata/fakeclaude, built once by TestMain.
var fakeClaude string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fakeclaude-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fakeClaude = filepath.Join(dir, "claude")
	build := exec.Command("go", "build", "-o", fakeClaude, "./testdata/fakeclaude")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build fake claude:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	secretBrightData = "bd-secret-token-8d7f6e"
	secretNeo4j      = "neo4j-secret-pw-1a2b3c"
	secretAnthropic  = "sk-ant-secret-key-9z8y"
)

// validDossier is what a good research run answers for testLease().
const validDossier = `{
  "entity_id": "club-testville", "entity_type": "Club", "name": "Testville Rovers FC", "instance_type": "entities",
  "mode": "research", "summary": "Testville Rovers FC is a football club in Testland.", "confidence": 0.7,
  "key_facts": [{"label": "Country", "value": "Testland", "source_url": "https://rovers.example/about"}],
  "relationships": [{"type": "COMPETES_IN", "target_name": "Testland Premier", "source_url": "https://rovers.example/about"}],
  "sources": [{"url": "https://rovers.example/about", "title": "About the club", "retrieved_at": "2025-01-10T09:30:00Z"}],
  "generated_at": "2025-01-10T09:45:00Z",
  "organisation": {"country": "Testland", "sport": "Football", "source_urls": ["https://rovers.example/about"]},
  "partnerships": {"confidence": 0.2, "partners": [{"name": "Testville Bank"}]}
}`

type claudeBundle struct {
	claude  *runner.Claude
	records string
	work    string
}

func setupClaude(t *testing.T, scenario string) *claudeBundle {
	t.Helper()
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.json"), filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(good, []byte(validDossier), 0o644))
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(validDossier), &doc))
	delete(doc["sources"].([]any)[0].(map[string]any), "title")
	raw, err := json.Marshal(doc)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bad, raw, 0o644))

	b := &claudeBundle{records: filepath.Join(dir, "records"), work: filepath.Join(dir, "work")}
	require.NoError(t, os.Mkdir(b.records, 0o755))
	require.NoError(t, os.Mkdir(b.work, 0o755))
	env := map[string]string{
		"PATH":                    os.Getenv("PATH"),
		"FAKE_CLAUDE_SCENARIO":    scenario,
		"FAKE_CLAUDE_RECORD":      b.records,
		"FAKE_CLAUDE_DOSSIER":     good,
		"FAKE_CLAUDE_BAD_DOSSIER": bad,
		"BRIGHTDATA_API_TOKEN":    secretBrightData,
		"NEO4J_URI":               "bolt://127.0.0.1:7687",
		"NEO4J_USERNAME":          "reader",
		"NEO4J_PASSWORD":          secretNeo4j,
		"ANTHROPIC_API_KEY":       secretAnthropic,
	}
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	b.claude = &runner.Claude{
		Default: runner.ClaudeConfig{Binary: fakeClaude, Model: "claude-sonnet-4-5", MaxTurns: 30, MaxBudgetUSD: 2.5,
			AppendSystemPrompt: "Answer in English.", MemoryLimit: 3 << 30},
		WorkDir:   b.work,
		Grace:     200 * time.Millisecond,
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Environ:   func() []string { return environ },
	}
	return b
}

type fakeRecord struct {
	Args      []string `json:"args"`
	Env       []string `json:"env"`
	Stdin     string   `json:"stdin"`
	DataLimit string   `json:"data_limit"`
	ChildPID  int      `json:"child_pid"`
	Cwd       string   `json:"cwd"`
	MCPConfig string   `json:"mcp_config"`
	MCPMode   string   `json:"mcp_mode"`
}

func (b *claudeBundle) recordsOf(t *testing.T) []fakeRecord {
	t.Helper()
	var out []fakeRecord
	for i := 0; ; i++ {
		raw, err := os.ReadFile(filepath.Join(b.records, fmt.Sprintf("%d.json", i)))
		if errors.Is(err, os.ErrNotExist) {
			return out
		}
		require.NoError(t, err)
		var r fakeRecord
		require.NoError(t, json.Unmarshal(raw, &r))
		out = append(out, r)
	}
}

func requireNoSecret(t *testing.T, s, what string) {
	t.Helper()
	for _, secret := range []string{secretBrightData, secretNeo4j, secretAnthropic} {
		require.NotContains(t, s, secret, "a secret leaked into %s", what)
	}
}

func TestClaudeSuccessArgvEnvAndStdin(t *testing.T) {
	t.Parallel()
	b := setupClaude(t, "fenced")
	lease := testLease()
	out, err := b.claude.Run(t.Context(), lease)
	require.NoError(t, err)
	require.NoError(t, schemas.Validate(schemas.EntityDossier, out.Dossier))
	require.Contains(t, string(out.Dossier), `"entity_id": "club-testville"`)

	m := out.Metrics
	require.Equal(t, "claude", m.GetRunner())
	require.InDelta(t, 0.42, m.GetCostUsd(), 1e-9)
	require.Equal(t, int64(1200+100+5000), m.GetInputTokens())
	require.Equal(t, int64(3400), m.GetOutputTokens())
	require.Equal(t, int32(17), m.GetTurns())
	require.Equal(t, "sess-fenced", m.GetSessionId())
	require.Positive(t, m.GetDuration().AsDuration())

	recs := b.recordsOf(t)
	require.Len(t, recs, 1)
	rec := recs[0]
	mcpPath := filepath.Join(rec.Cwd, "mcp.json")
	require.Equal(t, []string{
		"-p", "--output-format", "json",
		"--mcp-config", mcpPath, "--strict-mcp-config",
		"--allowedTools", strings.Join(runner.DefaultAllowedTools(), ","),
		"--max-turns", "30",
		"--model", "claude-sonnet-4-5",
		"--max-budget-usd", "2.5",
		"--append-system-prompt", "Answer in English.",
	}, rec.Args)
	requireNoSecret(t, strings.Join(rec.Args, " "), "the command line")

	// The rendered prompt is the whole of stdin.
	schemaJSON, err := schemas.Raw(schemas.EntityDossier)
	require.NoError(t, err)
	want, err := prompts.Render("entities", prompts.Data{Entity: lease.GetEntity(), InstanceType: "entities",
		Schema: schemas.EntityDossier, SchemaJSON: string(schemaJSON), Attempt: 1})
	require.NoError(t, err)
	require.Equal(t, want, rec.Stdin)

	// Each run gets a private folder under WorkDir, removed afterwards.
	require.Equal(t, b.work, filepath.Dir(rec.Cwd))
	require.NoDirExists(t, rec.Cwd)

	// Secrets reach the child through its environment only.
	for _, kv := range []string{
		"BRIGHTDATA_API_TOKEN=" + secretBrightData, "NEO4J_PASSWORD=" + secretNeo4j,
		"ENRICH_ENTITY_ID=club-testville", "ENRICH_INSTANCE_TYPE=entities", "ENRICH_SCHEMA=entity_dossier",
		"ENRICH_SCHEMA_PATH=" + filepath.Join(rec.Cwd, "entity_dossier.json"), "ENRICH_LEASE=42.7", "ENRICH_ATTEMPT=1",
		"NODE_OPTIONS=--max-old-space-size=2304",
	} {
		require.Contains(t, rec.Env, kv)
	}

	// The MCP file refers to secrets by name and is readable by the owner only.
	require.Equal(t, "-rw-------", rec.MCPMode)
	requireNoSecret(t, rec.MCPConfig, "the MCP configuration")
	var mcp struct {
		MCPServers map[string]struct {
			Command string            `json:"command"`
			Args    []string          `json:"args"`
			Env     map[string]string `json:"env"`
		} `json:"mcpServers"`
	}
	require.NoError(t, json.Unmarshal([]byte(rec.MCPConfig), &mcp))
	require.Equal(t, "npx", mcp.MCPServers["brightdata"].Command)
	require.Equal(t, []string{"-y", "@brightdata/mcp"}, mcp.MCPServers["brightdata"].Args)
	require.Equal(t, map[string]string{"API_TOKEN": "${BRIGHTDATA_API_TOKEN}"}, mcp.MCPServers["brightdata"].Env)
	require.Equal(t, "${NEO4J_PASSWORD}", mcp.MCPServers["neo4j"].Env["NEO4J_PASSWORD"])
	require.Equal(t, "true", mcp.MCPServers["neo4j"].Env["NEO4J_READ_ONLY"])

	if runner.MemoryLimitEnforced {
		require.Equal(t, "Max data size 3221225472 3221225472 bytes", rec.DataLimit)
	}
}

func TestClaudePerInstanceTypeConfig(t *testing.T) {
	t.Parallel()
	b := setupClaude(t, "fenced")
	b.claude.Types = map[string]runner.ClaudeConfig{"entities": {Model: "claude-opus-4-1", MaxTurns: 12,
		AllowedTools: []string{"mcp__brightdata__search_engine"}, ExtraArgs: []string{"--verbose"},
		MCPServers: map[string]runner.MCPServer{"web": {Command: "web-mcp", Env: map[string]string{"TOKEN": "BRIGHTDATA_API_TOKEN"}}}}}
	_, err := b.claude.Run(t.Context(), testLease())
	require.NoError(t, err)
	rec := b.recordsOf(t)[0]
	require.Equal(t, []string{"-p", "--output-format", "json", "--mcp-config", filepath.Join(rec.Cwd, "mcp.json"), "--strict-mcp-config",
		"--allowedTools", "mcp__brightdata__search_engine", "--max-turns", "12", "--model", "claude-opus-4-1",
		"--max-budget-usd", "2.5", "--append-system-prompt", "Answer in English.", "--verbose"}, rec.Args)
	require.JSONEq(t, `{"mcpServers":{"web":{"type":"stdio","command":"web-mcp","args":[],"env":{"TOKEN":"${BRIGHTDATA_API_TOKEN}"}}}}`, rec.MCPConfig)
}

func TestClaudeAnswers(t *testing.T) {
	t.Parallel()
	for _, scenario := range []string{"structured", "prose"} {
		t.Run(scenario, func(t *testing.T) {
			t.Parallel()
			b := setupClaude(t, scenario)
			out, err := b.claude.Run(t.Context(), testLease())
			require.NoError(t, err)
			require.JSONEq(t, validDossier, string(out.Dossier))
			require.Len(t, b.recordsOf(t), 1, "a valid first answer needs no repair turn")
		})
	}
}

func TestClaudeRepairTurn(t *testing.T) {
	t.Parallel()
	b := setupClaude(t, "repair")
	out, err := b.claude.Run(t.Context(), testLease())
	require.NoError(t, err)
	require.JSONEq(t, validDossier, string(out.Dossier))

	recs := b.recordsOf(t)
	require.Len(t, recs, 2)
	require.NotContains(t, recs[0].Args, "--resume")
	require.Equal(t, []string{"--resume", "sess-repair"}, recs[1].Args[len(recs[1].Args)-2:])
	require.Equal(t, recs[0].Args, recs[1].Args[:len(recs[1].Args)-2], "the repair turn keeps every other flag")
	require.Contains(t, recs[1].Stdin, "/sources/0: missing property 'title'")
	require.Contains(t, recs[1].Stdin, "ONLY the JSON object")

	m := out.Metrics
	require.InDelta(t, 0.45, m.GetCostUsd(), 1e-9)
	require.Equal(t, int32(18), m.GetTurns())
	require.Equal(t, int64(6300+7020), m.GetInputTokens())
	require.Equal(t, int64(4300), m.GetOutputTokens())
	require.Equal(t, "sess-repair", m.GetSessionId())
}

func TestClaudeFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		scenario   string
		class      runner.Class
		message    []string
		turns      int32
		cost       float64
		invocation int
		retryAfter time.Duration
	}{
		{scenario: "is_error", class: runner.ClassTransient, message: []string{"error_during_execution", "API Error: 500"}, turns: 17, cost: 0.42, invocation: 1},
		{scenario: "max_turns", class: runner.ClassLimitReached, message: []string{"max_turns", "40 turns"}, turns: 40, cost: 1.1, invocation: 1},
		{scenario: "budget", class: runner.ClassLimitReached, message: []string{"budget", "error_max_budget_usd"}, turns: 17, cost: 2.01, invocation: 1},
		{scenario: "rate_limit", class: runner.ClassRateLimited, message: []string{"429", "rate_limit_error"}, turns: 1, invocation: 1, retryAfter: 30 * time.Second},
		{scenario: "overloaded", class: runner.ClassRateLimited, message: []string{"status 1", "529"}, invocation: 1},
		{scenario: "auth", class: runner.ClassAgentUnhealthy, message: []string{"Invalid API key"}, invocation: 1},
		{scenario: "garbage", class: runner.ClassInvalidOutput, message: []string{"no result envelope", "Segmentation fault?"}, invocation: 1},
		{scenario: "huge", class: runner.ClassInvalidOutput, message: []string{"more than 1048576 bytes"}, invocation: 1},
		{scenario: "repair_fails", class: runner.ClassInvalidOutput, message: []string{"after one repair turn", "/sources/0: missing property 'title'"}, turns: 18, cost: 0.45, invocation: 2},
		{scenario: "leak_secret", class: runner.ClassTransient, message: []string{"status 3"}, invocation: 1},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			t.Parallel()
			b := setupClaude(t, tc.scenario)
			b.claude.MaxOutput = 1 << 20
			out, err := b.claude.Run(t.Context(), testLease())
			require.Nil(t, out)
			var re *runner.Error
			require.ErrorAs(t, err, &re)
			require.Equal(t, tc.class, re.Kind(), "message: %s", re.Message)
			require.Equal(t, tc.class.Retryable(), re.Retryable)
			require.Equal(t, tc.class == runner.ClassRateLimited, re.SlowDown())
			require.Equal(t, tc.class == runner.ClassAgentUnhealthy, re.Unhealthy())
			require.Equal(t, tc.retryAfter, re.RetryAfter)
			for _, m := range tc.message {
				require.Contains(t, re.Message, m)
			}
			require.Equal(t, "claude", re.Metrics.GetRunner())
			require.Equal(t, tc.turns, re.Metrics.GetTurns())
			require.InDelta(t, tc.cost, re.Metrics.GetCostUsd(), 1e-9)
			require.Len(t, b.recordsOf(t), tc.invocation)
			requireNoSecret(t, re.Message, "the failure message")
			requireNoSecret(t, re.StderrTail, "the stderr tail")
			if tc.scenario == "leak_secret" {
				require.Contains(t, re.StderrTail, "connecting with token [redacted]")
			}
		})
	}
}

func TestClaudeHangIsKilledAtTheDeadline(t *testing.T) {
	t.Parallel()
	b := setupClaude(t, "hang")
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	start := time.Now()
	out, err := b.claude.Run(ctx, testLease())
	elapsed := time.Since(start)
	require.Nil(t, out)
	var re *runner.Error
	require.ErrorAs(t, err, &re)
	require.Equal(t, runner.ClassTransient, re.Kind())
	require.Contains(t, re.Message, "cancelled")
	require.Less(t, elapsed, 5*time.Second)

	recs := b.recordsOf(t)
	require.Len(t, recs, 1)
	require.Positive(t, recs[0].ChildPID)
	// The fake ignores nothing, so SIGTERM ends it; its grandchild in the same group must be gone too.
	require.Eventually(t, func() bool {
		return errors.Is(syscall.Kill(recs[0].ChildPID, 0), syscall.ESRCH) || isZombie(recs[0].ChildPID)
	}, 3*time.Second, 20*time.Millisecond, "the grandchild outlived the run")
	require.NoDirExists(t, recs[0].Cwd)
}

func isZombie(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	return len(fields) > 0 && fields[0] == "Z"
}

func TestClaudeHostProblemsMarkTheAgentUnhealthy(t *testing.T) {
	t.Parallel()
	t.Run("missing binary", func(t *testing.T) {
		t.Parallel()
		b := setupClaude(t, "fenced")
		b.claude.Default.Binary = filepath.Join(t.TempDir(), "no-such-claude")
		_, err := b.claude.Run(t.Context(), testLease())
		var re *runner.Error
		require.ErrorAs(t, err, &re)
		require.True(t, re.Unhealthy(), re.Message)
		require.False(t, re.Retryable)
		require.Contains(t, re.Message, "not found")
	})
	t.Run("secret missing from the environment", func(t *testing.T) {
		t.Parallel()
		b := setupClaude(t, "fenced")
		lookup := b.claude.LookupEnv
		b.claude.LookupEnv = func(k string) (string, bool) {
			if k == "BRIGHTDATA_API_TOKEN" {
				return "", false
			}
			return lookup(k)
		}
		_, err := b.claude.Run(t.Context(), testLease())
		var re *runner.Error
		require.ErrorAs(t, err, &re)
		require.True(t, re.Unhealthy(), re.Message)
		require.Contains(t, re.Message, `"brightdata" needs BRIGHTDATA_API_TOKEN`)
		require.Empty(t, b.recordsOf(t), "claude must not start without its MCP credentials")
		entries, err := os.ReadDir(b.work)
		require.NoError(t, err)
		require.Empty(t, entries, "the run folder is removed")
	})
	t.Run("unknown schema is permanent, not unhealthy", func(t *testing.T) {
		t.Parallel()
		b := setupClaude(t, "fenced")
		lease := testLease()
		lease.Schema = "nope"
		_, err := b.claude.Run(t.Context(), lease)
		var re *runner.Error
		require.ErrorAs(t, err, &re)
		require.Equal(t, runner.ClassPermanent, re.Kind())
	})
}

func TestClassRetryable(t *testing.T) {
	t.Parallel()
	retryable := []runner.Class{runner.ClassTransient, runner.ClassRateLimited, runner.ClassInvalidOutput, runner.ClassLimitReached}
	for c := runner.ClassUnspecified; c <= runner.ClassAgentUnhealthy; c++ {
		require.Equal(t, c == runner.ClassUnspecified || slices.Contains(retryable, c), c.Retryable(), c.String())
	}
	require.Equal(t, runner.ClassTransient, (&runner.Error{Retryable: true}).Kind())
	require.Equal(t, runner.ClassPermanent, (&runner.Error{Retryable: false}).Kind())
}

// What the lease says the batch may still spend caps --max-budget-usd when it is below the
// configured cap, and leaves it alone when above.
func TestClaudeRunCappedByBatchBudget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		left float64
		want string
	}{{0.8, "0.8"}, {40, "2.5"}} {
		b := setupClaude(t, "fenced")
		lease := testLease()
		lease.MaxCostUsd = tc.left
		_, err := b.claude.Run(t.Context(), lease)
		require.NoError(t, err)
		recs := b.recordsOf(t)
		require.Len(t, recs, 1)
		i := slices.Index(recs[0].Args, "--max-budget-usd")
		require.GreaterOrEqual(t, i, 0)
		require.Equal(t, tc.want, recs[0].Args[i+1], "budget left %v", tc.left)
	}
}

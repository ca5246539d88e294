package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func loadYAML(t *testing.T, body string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "enrich.yaml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
	return LoadWith(path, func(string) (string, bool) { return "", false })
}

func TestClaudeBlock(t *testing.T) {
	t.Parallel()
	c, err := loadYAML(t, `
resource_allocation:
  persons:
    claude:
      binary: /opt/claude/bin/claude
      model: claude-sonnet-4-5
      max_turns: 60
      max_budget_usd: 2.5
      allowed_tools: [mcp__brightdata__search_engine, mcp__neo4j__read_neo4j_cypher]
      append_system_prompt: Stay within public professional information.
      extra_args: [--verbose]
      mcp_servers:
        brightdata:
          command: npx
          args: ["-y", "@brightdata/mcp"]
          env: {API_TOKEN: BRIGHTDATA_API_TOKEN}
          static_env: {PRO_MODE: "true"}
`)
	require.NoError(t, err)
	got := c.ResourceAllocation["persons"].Claude
	require.Equal(t, "/opt/claude/bin/claude", got.Binary)
	require.Equal(t, 60, got.MaxTurns)
	require.InDelta(t, 2.5, float64(got.MaxBudgetUSD), 1e-9)
	require.Equal(t, []string{"mcp__brightdata__search_engine", "mcp__neo4j__read_neo4j_cypher"}, got.AllowedTools)
	require.Equal(t, "BRIGHTDATA_API_TOKEN", got.MCPServers["brightdata"].Env["API_TOKEN"])
	require.Equal(t, "true", got.MCPServers["brightdata"].StaticEnv["PRO_MODE"])
	// Other types keep the defaults, and the block leaves the type's other keys alone.
	require.Zero(t, c.ResourceAllocation["entities"].Claude.MaxTurns)
	require.Equal(t, "poi_dossier", c.ResourceAllocation["persons"].Schema)
}

func TestClaudeBlockErrors(t *testing.T) {
	t.Parallel()
	_, err := loadYAML(t, `
resource_allocation:
  entities:
    claude:
      max_turns: -1
      max_budget_usd: lots
      extra_args: ["--resume", "--max-turns=3"]
      allowed_tools: ["a,b"]
      mcp_servers:
        web:
          command: ""
          env: {API_TOKEN: "sk-live-0123456789"}
      modle: x
`)
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		`:6: resource_allocation.entities.claude.max_budget_usd: invalid amount "lots"`,
		`:13: resource_allocation.entities.claude.modle: unknown key`,
	} {
		require.Contains(t, msg, want)
	}
	// Decoding errors stop before validation; fix them and the rest is reported.
	_, err = loadYAML(t, `
resource_allocation:
  entities:
    claude:
      max_turns: -1
      extra_args: ["--resume", "--max-turns=3"]
      allowed_tools: ["a,b"]
      mcp_servers:
        web:
          command: ""
          env: {API_TOKEN: "sk-live-0123456789"}
`)
	require.Error(t, err)
	msg = err.Error()
	for _, want := range []string{
		"resource_allocation.entities.claude.max_turns: must be 0 (default) or more, got -1",
		"resource_allocation.entities.claude.extra_args[0]: --resume is set by the runner",
		"resource_allocation.entities.claude.extra_args[1]: --max-turns is set by the runner",
		`resource_allocation.entities.claude.allowed_tools[0]: "a,b" must be one tool name`,
		"resource_allocation.entities.claude.mcp_servers.web.command: must not be empty",
		"resource_allocation.entities.claude.mcp_servers.web.env.API_TOKEN: must name an agent environment variable",
	} {
		require.Contains(t, msg, want)
	}
	require.NotContains(t, msg, "sk-live-0123456789", "a pasted secret must not be echoed")
}

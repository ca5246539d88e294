package config

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ClaudeConfig is resource_allocation.<type>.claude: how agents run Claude Code for that
// instance type (`enrich-agent --runner claude --config enrich.yaml`). Empty keys take the
// runner's defaults. The coordinator only validates the block; agents read it.
type ClaudeConfig struct {
	// Binary is the claude executable: a path, or a name looked up in PATH.
	Binary       string   `yaml:"binary"`
	Model        string   `yaml:"model"`
	MaxTurns     int      `yaml:"max_turns"`
	MaxBudgetUSD USD      `yaml:"max_budget_usd"`
	AllowedTools []string `yaml:"allowed_tools"`
	// AppendSystemPrompt is added to Claude Code's system prompt.
	AppendSystemPrompt string `yaml:"append_system_prompt"`
	// MCPServers, when set, replaces the default BrightData and Neo4j servers.
	MCPServers map[string]MCPServerConfig `yaml:"mcp_servers"`
	// ExtraArgs are appended to every claude command line.
	ExtraArgs []string `yaml:"extra_args"`
}

// MCPServerConfig is one stdio MCP server. Env maps a variable of the server's environment to
// the NAME of an agent environment variable, never to a value: secrets stay in the agent's
// environment. StaticEnv holds literal values that are not secret.
type MCPServerConfig struct {
	Command   string            `yaml:"command"`
	Args      []string          `yaml:"args"`
	Env       map[string]string `yaml:"env"`
	StaticEnv map[string]string `yaml:"static_env"`
}

// USD is an amount of money in US dollars, written as a plain number (2.5).
type USD float64

func (u *USD) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a number of US dollars, e.g. 2.5")
	}
	f, err := strconv.ParseFloat(strings.TrimPrefix(n.Value, "$"), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("invalid amount %q (want a number of US dollars, e.g. 2.5)", n.Value)
	}
	*u = USD(f)
	return nil
}

var envVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// runnerOwnedFlags are set by the runner itself; extra_args must not fight over them.
var runnerOwnedFlags = []string{"-p", "--print", "--output-format", "--mcp-config", "--strict-mcp-config", "--resume", "-r",
	"--allowedTools", "--allowed-tools", "--max-turns", "--model", "--max-budget-usd", "--append-system-prompt"}

func (c ClaudeConfig) validate(path string) []error {
	var errs []error
	add := func(p, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", p, fmt.Sprintf(format, args...)))
	}
	if c.MaxTurns < 0 {
		add(path+".max_turns", "must be 0 (default) or more, got %d", c.MaxTurns)
	}
	if c.MaxBudgetUSD < 0 {
		add(path+".max_budget_usd", "must be 0 (no cap) or more")
	}
	for i, t := range c.AllowedTools {
		if strings.TrimSpace(t) == "" || strings.ContainsAny(t, ", ") {
			add(fmt.Sprintf("%s.allowed_tools[%d]", path, i), "%q must be one tool name, without commas or spaces", t)
		}
	}
	for i, a := range c.ExtraArgs {
		flag, _, _ := strings.Cut(a, "=")
		if slices.Contains(runnerOwnedFlags, flag) {
			add(fmt.Sprintf("%s.extra_args[%d]", path, i), "%s is set by the runner; use the matching key instead", flag)
		}
	}
	for name, s := range c.MCPServers {
		p := path + ".mcp_servers." + name
		if strings.TrimSpace(s.Command) == "" {
			add(p+".command", "must not be empty")
		}
		for k, v := range s.Env {
			if !envVarRE.MatchString(k) {
				add(p+".env", "%q is not an environment variable name", k)
			}
			// Never echo v: a pasted token is exactly what this check catches.
			if !envVarRE.MatchString(v) {
				add(p+".env."+k, "must name an agent environment variable (e.g. BRIGHTDATA_API_TOKEN), not hold a value")
			}
		}
		for k := range s.StaticEnv {
			if !envVarRE.MatchString(k) {
				add(p+".static_env", "%q is not an environment variable name", k)
			}
		}
	}
	return errs
}

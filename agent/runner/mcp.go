package runner

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
)

// MCPServer is one stdio MCP server Claude Code starts for a run. Secrets never appear here: Env
// maps a variable of the server's environment to the name of an agent environment variable,
// and the generated file holds only a ${NAME} reference that Claude Code expands from the
// environment it passes on. StaticEnv is for values that are not secret (a read-only switch).
type MCPServer struct {
	Command   string
	Args      []string
	Env       map[string]string
	StaticEnv map[string]string
}

// Default MCP servers: BrightData for web search and scraping (LinkedIn included), and the Neo4j
// Cypher server for read-only access to the knowledge graph.
const (
	MCPBrightData = "brightdata"
	MCPNeo4j      = "neo4j"
)

// DefaultMCPServers returns the servers used when the configuration names none.
func DefaultMCPServers() map[string]MCPServer {
	return map[string]MCPServer{
		MCPBrightData: {
			Command: "npx",
			Args:    []string{"-y", "@brightdata/mcp"},
			Env:     map[string]string{"API_TOKEN": "BRIGHTDATA_API_TOKEN"},
		},
		MCPNeo4j: {
			Command: "uvx",
			Args:    []string{"mcp-neo4j-cypher"},
			Env: map[string]string{
				"NEO4J_URI":      "NEO4J_URI",
				"NEO4J_USERNAME": "NEO4J_USERNAME",
				"NEO4J_PASSWORD": "NEO4J_PASSWORD",
			},
			// Belt and braces: the server refuses writes, the allowed tools exclude
			// write_neo4j_cypher, and the docs ask for a read-only database user.
			StaticEnv: map[string]string{"NEO4J_READ_ONLY": "true"},
		},
	}
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// mcpFile is Claude Code's --mcp-config format.
type mcpFile struct {
	MCPServers map[string]mcpEntry `json:"mcpServers"`
}

type mcpEntry struct {
	Type    string            `json:"type"`
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	Env     map[string]string `json:"env,omitempty"`
}

// writeMCPConfig writes the MCP configuration for one run into dir, mode 0600, and returns its
// path and the agent variables the servers need. A referenced variable that is unset or empty
// is a configuration error of the host: every run here would start servers that cannot log in.
func writeMCPConfig(dir string, servers map[string]MCPServer, lookup func(string) (string, bool)) (string, []string, error) {
	f := mcpFile{MCPServers: map[string]mcpEntry{}}
	var secrets []string
	for _, name := range slices.Sorted(maps.Keys(servers)) {
		s := servers[name]
		if s.Command == "" {
			return "", nil, fmt.Errorf("mcp server %q: no command", name)
		}
		e := mcpEntry{Type: "stdio", Command: s.Command, Args: append([]string{}, s.Args...)}
		if len(s.Env)+len(s.StaticEnv) > 0 {
			e.Env = map[string]string{}
		}
		for k, v := range s.StaticEnv {
			e.Env[k] = v
		}
		for _, k := range slices.Sorted(maps.Keys(s.Env)) {
			from := s.Env[k]
			if !envNameRE.MatchString(k) || !envNameRE.MatchString(from) {
				return "", nil, fmt.Errorf("mcp server %q: env %s=%s: both sides must be variable names", name, k, from)
			}
			if v, ok := lookup(from); !ok || v == "" {
				return "", nil, fmt.Errorf("mcp server %q needs %s in the agent's environment", name, from)
			}
			e.Env[k] = "${" + from + "}"
			secrets = append(secrets, from)
		}
		f.MCPServers[name] = e
	}
	raw, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return "", nil, err
	}
	path := filepath.Join(dir, "mcp.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return "", nil, fmt.Errorf("write mcp config: %w", err)
	}
	return path, secrets, nil
}

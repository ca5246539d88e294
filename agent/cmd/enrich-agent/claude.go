package main

import (
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sportsintel/enrich/agent/runner"
	"github.com/sportsintel/enrich/coordinator/config"
)

// newClaudeRunner builds the Claude Code runner from the resource_allocation.<type>.claude blocks
// of enrich.yaml (the coordinator's file: one file describes the fleet). The agent reads only
// those blocks and memory_limit; the rest of the file is validated but not used here. cleanup
// removes the temporary work folder, if one was made.
func newClaudeRunner(configPath, workDir string, grace time.Duration, log hclog.Logger) (r *runner.Claude, cleanup func(), err error) {
	cfg, err := config.Load(configPath)
	if err != nil {
		return nil, nil, err
	}
	cleanup = func() {}
	if workDir == "" {
		tmp, err := os.MkdirTemp("", "enrich-agent-")
		if err != nil {
			return nil, nil, err
		}
		workDir, cleanup = tmp, func() { os.RemoveAll(tmp) }
	} else if err := os.MkdirAll(workDir, 0o700); err != nil {
		return nil, nil, err
	}
	types := map[string]runner.ClaudeConfig{}
	for name, ic := range cfg.ResourceAllocation {
		mem, err := ic.MemoryLimitBytes()
		if err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("resource_allocation.%s.memory_limit: %w", name, err)
		}
		types[name] = claudeConfig(ic.Claude, mem)
	}
	if !runner.MemoryLimitEnforced {
		log.Warn("memory_limit is not enforced on this platform")
	}
	return &runner.Claude{Types: types, WorkDir: workDir, Grace: grace, Logger: log.Named("claude")}, cleanup, nil
}

func claudeConfig(c config.ClaudeConfig, memoryLimit int64) runner.ClaudeConfig {
	out := runner.ClaudeConfig{Binary: c.Binary, Model: c.Model, MaxTurns: c.MaxTurns, MaxBudgetUSD: float64(c.MaxBudgetUSD),
		AllowedTools: c.AllowedTools, AppendSystemPrompt: c.AppendSystemPrompt, ExtraArgs: c.ExtraArgs, MemoryLimit: memoryLimit}
	if c.MCPServers != nil {
		out.MCPServers = map[string]runner.MCPServer{}
		for name, s := range c.MCPServers {
			out.MCPServers[name] = runner.MCPServer{Command: s.Command, Args: s.Args, Env: s.Env, StaticEnv: s.StaticEnv}
		}
	}
	return out
}

package runner

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/types/known/durationpb"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
	"github.com/sportsintel/enrich/schemas"
)

// Defaults of ClaudeConfig.
const (
	DefaultClaudeBinary = "claude"
	DefaultMaxTurns     = 40
)

// DefaultAllowedTools are the MCP tools a research run may call: BrightData search, scraping and
// the LinkedIn and company data tools, and the read-only Neo4j tools. Claude Code's built-in
// tools (Bash, Write, ...) are not on the list, so a run cannot touch the agent host.
func DefaultAllowedTools() []string {
	return []string{
		"mcp__brightdata__search_engine",
		"mcp__brightdata__scrape_as_markdown",
		"mcp__brightdata__web_data_linkedin_person_profile",
		"mcp__brightdata__web_data_linkedin_company_profile",
		"mcp__neo4j__get_neo4j_schema",
		"mcp__neo4j__read_neo4j_cypher",
	}
}

// ClaudeConfig is how one instance type runs Claude Code. Zero fields take the runner's
// Default, then the built-in defaults.
type ClaudeConfig struct {
	// Binary is the claude executable, a path or a name looked up in PATH.
	Binary   string
	Model    string
	MaxTurns int
	// MaxBudgetUSD caps one claude invocation (--max-budget-usd); the repair turn gets its own cap.
	MaxBudgetUSD       float64
	AllowedTools       []string
	AppendSystemPrompt string
	// MCPServers replaces DefaultMCPServers when not nil.
	MCPServers map[string]MCPServer
	// ExtraArgs are appended after the runner's own flags.
	ExtraArgs []string
	// MemoryLimit caps the run's memory in bytes (RLIMIT_DATA, Linux); 0 means none.
	MemoryLimit int64
}

func (c ClaudeConfig) merged(over ClaudeConfig) ClaudeConfig {
	out := c
	out.Binary = cmp.Or(over.Binary, c.Binary)
	out.Model = cmp.Or(over.Model, c.Model)
	out.MaxTurns = cmp.Or(over.MaxTurns, c.MaxTurns)
	out.MaxBudgetUSD = cmp.Or(over.MaxBudgetUSD, c.MaxBudgetUSD)
	out.AppendSystemPrompt = cmp.Or(over.AppendSystemPrompt, c.AppendSystemPrompt)
	out.MemoryLimit = cmp.Or(over.MemoryLimit, c.MemoryLimit)
	if over.AllowedTools != nil {
		out.AllowedTools = over.AllowedTools
	}
	if over.MCPServers != nil {
		out.MCPServers = over.MCPServers
	}
	if over.ExtraArgs != nil {
		out.ExtraArgs = over.ExtraArgs
	}
	return out
}

// Claude runs Claude Code headless once per lease: `claude -p --output-format json` with a
// generated MCP configuration, the rendered prompt on stdin. It parses the result envelope,
// extracts and validates the dossier, and when the dossier fails validation it asks for a
// correction once in the same session (--resume). Cost, tokens, turns and the session id of
// both turns are summed into the result's metrics, also for failures.
//
// Secrets stay in the environment: the MCP file refers to them as ${NAME}, the command line
// never carries one, and their values are redacted from the messages and stderr the
// coordinator receives.
type Claude struct {
	// Types holds per instance type settings, on top of Default.
	Types   map[string]ClaudeConfig
	Default ClaudeConfig
	// WorkDir receives one private folder per lease (schema, MCP configuration), removed after
	// the run. It must exist.
	WorkDir   string
	Grace     time.Duration
	MaxOutput int
	// NoRepair turns off the repair turn.
	NoRepair bool
	// Validation tunes the attribution checks the dossier must pass before it is sent.
	Validation schemas.Options
	Logger     hclog.Logger
	// LookupEnv and Environ default to the process environment; tests pass their own.
	LookupEnv func(string) (string, bool)
	Environ   func() []string

	limitWarn sync.Once
}

// Config returns the effective settings of an instance type.
func (c *Claude) Config(instanceType string) ClaudeConfig {
	cfg := ClaudeConfig{Binary: DefaultClaudeBinary, MaxTurns: DefaultMaxTurns, AllowedTools: DefaultAllowedTools(),
		MCPServers: DefaultMCPServers()}
	return cfg.merged(c.Default).merged(c.Types[instanceType])
}

// Args returns the command line of one turn (without argv[0]); resume is the session to
// continue, or "".
func (cfg ClaudeConfig) Args(mcpPath, resume string) []string {
	args := []string{"-p", "--output-format", "json", "--mcp-config", mcpPath, "--strict-mcp-config",
		"--allowedTools", strings.Join(cfg.AllowedTools, ","), "--max-turns", strconv.Itoa(cfg.MaxTurns)}
	if cfg.Model != "" {
		args = append(args, "--model", cfg.Model)
	}
	if cfg.MaxBudgetUSD > 0 {
		args = append(args, "--max-budget-usd", strconv.FormatFloat(cfg.MaxBudgetUSD, 'f', -1, 64))
	}
	if cfg.AppendSystemPrompt != "" {
		args = append(args, "--append-system-prompt", cfg.AppendSystemPrompt)
	}
	if resume != "" {
		args = append(args, "--resume", resume)
	}
	return append(args, cfg.ExtraArgs...)
}

// claudeRun carries one lease's run across its turns.
type claudeRun struct {
	c       *Claude
	cfg     ClaudeConfig
	lease   *enrichv1.Lease
	dir     string
	mcpPath string
	env     []string
	secrets []string // values to redact
	start   time.Time
	metrics *enrichv1.RunMetrics
	stderr  string
}

func (c *Claude) lookup(name string) (string, bool) {
	if c.LookupEnv != nil {
		return c.LookupEnv(name)
	}
	return os.LookupEnv(name)
}

func (c *Claude) Run(ctx context.Context, lease *enrichv1.Lease) (*Output, error) {
	r := &claudeRun{c: c, cfg: c.Config(lease.GetInstanceType()), lease: lease, start: time.Now(),
		metrics: &enrichv1.RunMetrics{Runner: "claude"}}
	// What the batch may still spend caps this run too, so the batch overshoots its budget by at
	// most one run's cap per lease in flight.
	if left := lease.GetMaxCostUsd(); left > 0 && (r.cfg.MaxBudgetUSD <= 0 || left < r.cfg.MaxBudgetUSD) {
		r.cfg.MaxBudgetUSD = left
	}
	prompt, err := renderLease(lease)
	if err != nil {
		return nil, r.finish(err)
	}
	err = r.prepare()
	if r.dir != "" {
		defer os.RemoveAll(r.dir)
	}
	if err != nil {
		return nil, r.finish(err)
	}

	env, err := r.turn(ctx, "", prompt)
	if err != nil {
		return nil, r.finish(err)
	}
	doc, problem := r.check(env)
	if problem != "" && !c.NoRepair && env.SessionID != "" {
		env, err = r.turn(ctx, env.SessionID, repairPrompt(lease.GetSchema(), problem))
		if err != nil {
			return nil, r.finish(err)
		}
		doc, problem = r.check(env)
		if problem != "" {
			problem = "after one repair turn, " + problem
		}
	}
	if problem != "" {
		return nil, r.finish(classified(ClassInvalidOutput, problem))
	}
	r.metrics.Duration = durationpb.New(time.Since(r.start))
	return &Output{Dossier: doc, Metrics: r.metrics}, nil
}

// prepare makes the lease's private folder with the schema and the MCP configuration, and the
// child's environment.
func (r *claudeRun) prepare() error {
	dir, err := os.MkdirTemp(r.c.WorkDir, "lease-")
	if err != nil {
		return classified(ClassAgentUnhealthy, fmt.Sprintf("make the run folder: %v", err))
	}
	r.dir = dir
	raw, err := schemas.Raw(r.lease.GetSchema())
	if err != nil {
		return classified(ClassPermanent, fmt.Sprintf("lease names an unknown schema: %v", err))
	}
	schemaPath := filepath.Join(dir, r.lease.GetSchema()+".json")
	if err := os.WriteFile(schemaPath, raw, 0o600); err != nil {
		return classified(ClassAgentUnhealthy, fmt.Sprintf("write schema file: %v", err))
	}
	mcpPath, secretNames, err := writeMCPConfig(dir, r.cfg.MCPServers, r.c.lookup)
	if err != nil {
		return classified(ClassAgentUnhealthy, err.Error())
	}
	r.mcpPath = mcpPath
	for _, name := range append(secretNames, "ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN") {
		if v, ok := r.c.lookup(name); ok && len(v) >= 4 {
			r.secrets = append(r.secrets, v)
		}
	}
	leaseVars, err := leaseEnv(r.lease, schemaPath)
	if err != nil {
		return err
	}
	environ := os.Environ
	if r.c.Environ != nil {
		environ = r.c.Environ
	}
	r.env = append(environ(), leaseVars...)
	if r.cfg.MemoryLimit > 0 {
		r.env = withNodeHeapLimit(r.env, r.cfg.MemoryLimit)
	}
	return nil
}

// withNodeHeapLimit sizes V8's old space at three quarters of the memory limit, so Node.js
// collects garbage before the kernel limit turns an allocation into a crash.
func withNodeHeapLimit(env []string, limit int64) []string {
	flag := fmt.Sprintf("--max-old-space-size=%d", max(limit*3/4>>20, 64))
	for i, kv := range env {
		if v, ok := strings.CutPrefix(kv, "NODE_OPTIONS="); ok {
			if strings.Contains(v, "--max-old-space-size") {
				return env // the operator chose one
			}
			out := slices.Clone(env)
			out[i] = strings.TrimSpace("NODE_OPTIONS=" + v + " " + flag)
			return out
		}
	}
	return append(env, "NODE_OPTIONS="+flag)
}

// turn runs claude once and returns its envelope, or the classified failure.
func (r *claudeRun) turn(ctx context.Context, resume, stdin string) (*envelope, error) {
	res := process{
		Path: r.cfg.Binary, Args: r.cfg.Args(r.mcpPath, resume), Env: r.env, Dir: r.dir, Stdin: []byte(stdin),
		MaxOutput: r.c.MaxOutput, Grace: r.c.Grace, MemoryLimit: r.cfg.MemoryLimit,
	}.run(ctx)
	r.stderr = res.Stderr
	if res.LimitErr != nil && r.c.Logger != nil {
		r.c.limitWarn.Do(func() { r.c.Logger.Warn("memory limit not applied", "error", res.LimitErr) })
	}
	switch {
	case res.StartErr != nil:
		if errors.Is(res.StartErr, exec.ErrNotFound) || errors.Is(res.StartErr, fs.ErrNotExist) {
			return nil, classified(ClassAgentUnhealthy, fmt.Sprintf("claude binary %q not found: install Claude Code or set binary in enrich.yaml", r.cfg.Binary))
		}
		return nil, classified(ClassAgentUnhealthy, fmt.Sprintf("start %s: %v", r.cfg.Binary, res.StartErr))
	case res.Cancelled:
		return nil, classified(ClassTransient, fmt.Sprintf("cancelled: %v", context.Cause(ctx)))
	case res.Overflow:
		return nil, classified(ClassInvalidOutput, fmt.Sprintf("claude wrote more than %d bytes to stdout", outputLimit(r.c.MaxOutput)))
	}
	env, rateEvent := parseEnvelope(res.Stdout)
	if env == nil {
		text := res.Stderr + "\n" + head(string(res.Stdout), 4096)
		class := classifyText(text)
		if rateEvent {
			class = ClassRateLimited
		}
		code := res.exitCode()
		if class == ClassTransient && code == 0 {
			class = ClassInvalidOutput
		}
		e := classified(class, fmt.Sprintf("claude exited with status %d and printed no result envelope%s (stdout began with %q)",
			code, lastLine(res.Stderr), head(string(res.Stdout), 120)))
		e.RetryAfter = retryAfter(text)
		return nil, e
	}
	r.add(env)
	switch {
	case env.Subtype == subtypeMaxTurns:
		return nil, classified(ClassLimitReached, fmt.Sprintf("claude stopped at max_turns (%s) before answering", env.describe()))
	case env.Subtype == subtypeMaxBudget || strings.Contains(env.Subtype, "budget") || strings.Contains(env.TerminalReason, "budget"):
		return nil, classified(ClassLimitReached, fmt.Sprintf("claude stopped at its budget (%s) before answering", env.describe()))
	case env.IsError || env.Subtype != subtypeSuccess:
		text := env.Result + "\n" + res.Stderr
		class := classifyText(text)
		if rateEvent {
			class = ClassRateLimited
		}
		e := classified(class, fmt.Sprintf("claude reported an error (%s): %s", env.describe(), head(oneLineText(env.Result), 300)))
		e.RetryAfter = retryAfter(text)
		return nil, e
	}
	return env, nil
}

// add sums one turn's usage into the run's metrics. Input tokens include cache reads and
// writes: they are all prompt tokens the run was billed for.
func (r *claudeRun) add(e *envelope) {
	m := r.metrics
	m.CostUsd += e.TotalCostUSD
	m.InputTokens += e.Usage.InputTokens + e.Usage.CacheCreationInputTokens + e.Usage.CacheReadInputTokens
	m.OutputTokens += e.Usage.OutputTokens
	m.Turns += e.NumTurns
	if e.SessionID != "" {
		m.SessionId = e.SessionID
	}
}

// check extracts and validates the dossier; problem is empty when it is acceptable, else it says
// what is wrong in words the model can act on.
func (r *claudeRun) check(env *envelope) (doc []byte, problem string) {
	doc, err := ExtractJSON(env.dossierCandidate())
	if err != nil {
		return nil, fmt.Sprintf("the answer held no JSON object (it began with %q)", head(oneLineText(env.Result), 200))
	}
	if err := schemas.ValidateWith(r.lease.GetSchema(), doc, r.c.Validation); err != nil {
		return nil, err.Error()
	}
	var id struct {
		EntityID string `json:"entity_id"`
		Mode     string `json:"mode"`
	}
	_ = json.Unmarshal(doc, &id)
	var wrong []string
	if id.EntityID != r.lease.GetEntity().GetId() {
		wrong = append(wrong, fmt.Sprintf("/entity_id: must be %q, the id of the entity researched", r.lease.GetEntity().GetId()))
	}
	if id.Mode != "research" {
		wrong = append(wrong, `/mode: must be "research"`)
	}
	if len(wrong) > 0 {
		return nil, "dossier does not match the lease:\n  " + strings.Join(wrong, "\n  ")
	}
	return doc, ""
}

// repairPrompt asks, in the same session, for a corrected dossier.
func repairPrompt(schema, problem string) string {
	return fmt.Sprintf(`Your answer was rejected by the validator of the control plane:

%s

Reply with the corrected dossier: ONLY the JSON object, valid against the %s schema you were given,
with no prose and no fence. Fix exactly what is listed and keep everything else. Every section with
confidence at or above the threshold must cite at least one source in source_urls, and every cited
URL must be listed in sources with its title and retrieved_at; where you cannot cite a source, lower
that section's confidence instead of inventing one.
`, problem, schema)
}

// finish completes a failure: metrics so far, stderr tail, secrets redacted.
func (r *claudeRun) finish(err error) error {
	re := AsError(err)
	r.metrics.Duration = durationpb.New(time.Since(r.start))
	re.Metrics = r.metrics
	re.Message = redact(re.Message, r.secrets)
	re.StderrTail = redact(r.stderr, r.secrets)
	return re
}

func redact(s string, secrets []string) string {
	for _, v := range secrets {
		s = strings.ReplaceAll(s, v, "[redacted]")
	}
	return s
}

func oneLineText(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

var _ Runner = (*Claude)(nil)

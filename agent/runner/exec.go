package runner

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
	"github.com/sportsintel/enrich/prompts"
	"github.com/sportsintel/enrich/schemas"
)

// Exit codes a command uses to say retrying cannot help (sysexits.h EX_USAGE and EX_DATAERR).
const (
	ExitUsage   = 64
	ExitDataErr = 65
)

// Defaults of Exec.
const (
	DefaultGrace     = 10 * time.Second
	DefaultMaxOutput = 16 << 20
	stderrTailBytes  = 8 << 10
)

// Exec runs Command with /bin/sh -c once per lease, in its own process group. The rendered prompt
// is its stdin; the entity and the schema are in its environment (ENRICH_ENTITY_JSON,
// ENRICH_SCHEMA_PATH, ...); its stdout must hold the dossier JSON. Cancellation sends SIGTERM to
// the whole group, then SIGKILL after Grace, so no child outlives its lease.
type Exec struct {
	Command string
	// WorkDir receives the schema files the command may read; it must exist.
	WorkDir   string
	Grace     time.Duration
	MaxOutput int
	// Env is added to the agent's own environment.
	Env []string

	schemaMu    sync.Mutex
	schemaPaths map[string]string
}

func (e *Exec) schemaPath(name string) (string, error) {
	e.schemaMu.Lock()
	defer e.schemaMu.Unlock()
	if p, ok := e.schemaPaths[name]; ok {
		return p, nil
	}
	raw, err := schemas.Raw(name)
	if err != nil {
		return "", err
	}
	p := filepath.Join(e.WorkDir, name+".json")
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		return "", fmt.Errorf("write schema file: %w", err)
	}
	if e.schemaPaths == nil {
		e.schemaPaths = map[string]string{}
	}
	e.schemaPaths[name] = p
	return p, nil
}

func (e *Exec) Run(ctx context.Context, lease *enrichv1.Lease) (*Output, error) {
	start := time.Now()
	schemaPath, err := e.schemaPath(lease.GetSchema())
	if err != nil {
		if _, unknownSchema := schemas.Raw(lease.GetSchema()); unknownSchema != nil {
			return nil, classified(ClassPermanent, fmt.Sprintf("lease names an unknown schema: %v", unknownSchema))
		}
		return nil, classified(ClassTransient, err.Error())
	}
	prompt, err := renderLease(lease)
	if err != nil {
		return nil, err
	}
	env, err := leaseEnv(lease, schemaPath)
	if err != nil {
		return nil, err
	}
	res := process{
		Path: "/bin/sh", Args: []string{"-c", e.Command},
		Env: append(append(os.Environ(), e.Env...), env...), Dir: e.WorkDir, Stdin: []byte(prompt),
		MaxOutput: e.MaxOutput, Grace: e.Grace,
	}.run(ctx)

	metrics := &enrichv1.RunMetrics{Duration: durationpb.New(time.Since(start)), Runner: "exec"}
	fail := func(c Class, format string, args ...any) (*Output, error) {
		re := classified(c, fmt.Sprintf(format, args...))
		re.StderrTail, re.Metrics = res.Stderr, metrics
		return nil, re
	}
	switch {
	case res.StartErr != nil:
		// /bin/sh or the work directory is missing: every lease on this host fails the same way.
		return fail(ClassAgentUnhealthy, "start %q: %v", e.Command, res.StartErr)
	case res.Cancelled:
		return fail(ClassTransient, "cancelled: %v", context.Cause(ctx))
	case res.Overflow:
		return fail(ClassInvalidOutput, "the command wrote more than %d bytes to stdout", outputLimit(e.MaxOutput))
	case res.WaitErr != nil:
		if code := res.exitCode(); code >= 0 {
			c := ClassTransient
			if code == ExitUsage || code == ExitDataErr {
				c = ClassPermanent
			}
			return fail(c, "the command exited with status %d%s", code, lastLine(res.Stderr))
		}
		return fail(ClassTransient, "the command failed: %v", res.WaitErr)
	}
	doc, err := ExtractJSON(res.Stdout)
	if err != nil {
		return fail(ClassInvalidOutput, "%v (stdout began with %q)", err, head(string(res.Stdout), 120))
	}
	if err := schemas.Validate(lease.GetSchema(), doc); err != nil {
		return fail(ClassInvalidOutput, "the dossier does not match schema %s: %v", lease.GetSchema(), err)
	}
	return &Output{Dossier: doc, Metrics: metrics}, nil
}

func outputLimit(n int) int {
	if n <= 0 {
		return DefaultMaxOutput
	}
	return n
}

// renderLease renders the lease's prompt with its schema. Both are named by the coordinator, so
// a failure here is permanent for the lease.
func renderLease(lease *enrichv1.Lease) (string, error) {
	schemaJSON, err := schemas.Raw(lease.GetSchema())
	if err != nil {
		return "", classified(ClassPermanent, fmt.Sprintf("lease names an unknown schema: %v", err))
	}
	prompt, err := prompts.Render(lease.GetPrompt(), prompts.Data{Entity: lease.GetEntity(), InstanceType: lease.GetInstanceType(),
		Schema: lease.GetSchema(), SchemaJSON: string(schemaJSON), Attempt: lease.GetAttempt()})
	if err != nil {
		return "", classified(ClassPermanent, fmt.Sprintf("render prompt: %v", err))
	}
	return prompt, nil
}

// leaseEnv is the ENRICH_* environment every runner process receives.
func leaseEnv(lease *enrichv1.Lease, schemaPath string) ([]string, error) {
	entityJSON, err := protojson.Marshal(lease.GetEntity())
	if err != nil {
		return nil, classified(ClassPermanent, fmt.Sprintf("encode entity: %v", err))
	}
	return []string{
		"ENRICH_ENTITY_JSON=" + string(entityJSON),
		"ENRICH_ENTITY_ID=" + lease.GetEntity().GetId(),
		"ENRICH_INSTANCE_TYPE=" + lease.GetInstanceType(),
		"ENRICH_SCHEMA=" + lease.GetSchema(),
		"ENRICH_SCHEMA_PATH=" + schemaPath,
		"ENRICH_BATCH_ID=" + lease.GetBatchId(),
		"ENRICH_ATTEMPT=" + strconv.Itoa(int(lease.GetAttempt())),
		"ENRICH_LEASE=" + fmt.Sprintf("%d.%d", lease.GetLease().GetItemId(), lease.GetLease().GetToken()),
	}, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return ": " + head(s, 300)
}

func head(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// limitedBuffer keeps up to max bytes and remembers that more was written.
type limitedBuffer struct {
	buf      bytes.Buffer
	max      int
	overflow bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); len(p) > room {
		b.overflow = true
		b.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.buf.Write(p)
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.ToValidUTF8(string(b.buf), "")
}

package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	schemaJSON, err := schemas.Raw(lease.GetSchema())
	if err != nil {
		return nil, &Error{Retryable: false, Message: fmt.Sprintf("lease names an unknown schema: %v", err)}
	}
	schemaPath, err := e.schemaPath(lease.GetSchema())
	if err != nil {
		return nil, &Error{Retryable: true, Message: err.Error()}
	}
	prompt, err := prompts.Render(lease.GetPrompt(), prompts.Data{Entity: lease.GetEntity(), InstanceType: lease.GetInstanceType(),
		Schema: lease.GetSchema(), SchemaJSON: string(schemaJSON), Attempt: lease.GetAttempt()})
	if err != nil {
		return nil, &Error{Retryable: false, Message: fmt.Sprintf("render prompt: %v", err)}
	}
	entityJSON, err := protojson.Marshal(lease.GetEntity())
	if err != nil {
		return nil, &Error{Retryable: false, Message: fmt.Sprintf("encode entity: %v", err)}
	}

	cmd := exec.Command("/bin/sh", "-c", e.Command)
	cmd.Env = append(append(os.Environ(), e.Env...),
		"ENRICH_ENTITY_JSON="+string(entityJSON),
		"ENRICH_ENTITY_ID="+lease.GetEntity().GetId(),
		"ENRICH_INSTANCE_TYPE="+lease.GetInstanceType(),
		"ENRICH_SCHEMA="+lease.GetSchema(),
		"ENRICH_SCHEMA_PATH="+schemaPath,
		"ENRICH_BATCH_ID="+lease.GetBatchId(),
		"ENRICH_ATTEMPT="+strconv.Itoa(int(lease.GetAttempt())),
		"ENRICH_LEASE="+fmt.Sprintf("%d.%d", lease.GetLease().GetItemId(), lease.GetLease().GetToken()),
	)
	cmd.Dir = e.WorkDir
	cmd.Stdin = strings.NewReader(prompt)
	maxOut := e.MaxOutput
	if maxOut <= 0 {
		maxOut = DefaultMaxOutput
	}
	stdout := &limitedBuffer{max: maxOut}
	stderr := &tailBuffer{max: stderrTailBytes}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Pipes stay open while any grandchild holds them; never wait on them forever.
	cmd.WaitDelay = time.Second

	if err := cmd.Start(); err != nil {
		return nil, &Error{Retryable: false, Message: fmt.Sprintf("start %q: %v", e.Command, err)}
	}
	pgid := cmd.Process.Pid
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	var waitErr error
	cancelled := false
	select {
	case waitErr = <-waited:
	case <-ctx.Done():
		cancelled = true
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		grace := e.Grace
		if grace <= 0 {
			grace = DefaultGrace
		}
		select {
		case waitErr = <-waited:
		case <-time.After(grace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			waitErr = <-waited
		}
	}
	// Whatever the command left behind in its group dies with the lease.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)

	metrics := &enrichv1.RunMetrics{Duration: durationpb.New(time.Since(start)), Runner: "exec"}
	fail := func(retryable bool, format string, args ...any) (*Output, error) {
		return nil, &Error{Retryable: retryable, Message: fmt.Sprintf(format, args...), StderrTail: stderr.String(), Metrics: metrics}
	}
	if cancelled {
		return fail(true, "cancelled: %v", context.Cause(ctx))
	}
	if stdout.overflow {
		return fail(true, "the command wrote more than %d bytes to stdout", maxOut)
	}
	if waitErr != nil {
		var exitErr *exec.ExitError
		if errors.As(waitErr, &exitErr) {
			code := exitErr.ExitCode()
			permanent := code == ExitUsage || code == ExitDataErr
			return fail(!permanent, "the command exited with status %d%s", code, lastLine(stderr.String()))
		}
		if !errors.Is(waitErr, exec.ErrWaitDelay) {
			return fail(true, "the command failed: %v", waitErr)
		}
	}
	doc, err := ExtractJSON(stdout.buf.Bytes())
	if err != nil {
		return fail(true, "%v (stdout began with %q)", err, head(stdout.buf.String(), 120))
	}
	if err := schemas.Validate(lease.GetSchema(), doc); err != nil {
		return fail(true, "the dossier does not match schema %s: %v", lease.GetSchema(), err)
	}
	return &Output{Dossier: doc, Metrics: metrics}, nil
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

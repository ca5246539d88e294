package runner

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"syscall"
	"time"
)

// process is one child run: Exec runs a shell command with it, Claude runs the claude binary.
type process struct {
	Path  string
	Args  []string // without argv[0]
	Env   []string
	Dir   string
	Stdin []byte
	// MaxOutput bounds the stdout kept; Grace is the time between SIGTERM and SIGKILL.
	MaxOutput int
	Grace     time.Duration
	// MemoryLimit, in bytes, is applied to the child before it reads its stdin (0: none).
	MemoryLimit int64
}

// processResult is what a finished (or killed) child left behind.
type processResult struct {
	Stdout    []byte
	Overflow  bool
	Stderr    string
	StartErr  error
	WaitErr   error
	Cancelled bool
	// LimitErr says why MemoryLimit could not be applied; the run went on without it.
	LimitErr error
}

// run starts the child in its own process group, feeds it Stdin and waits. When ctx ends the
// whole group gets SIGTERM, then SIGKILL after Grace; whatever the child left in its group is
// killed in any case, so no grandchild outlives the lease.
func (p process) run(ctx context.Context) processResult {
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = p.Env
	cmd.Dir = p.Dir
	maxOut := p.MaxOutput
	if maxOut <= 0 {
		maxOut = DefaultMaxOutput
	}
	stdout := &limitedBuffer{max: maxOut}
	stderr := &tailBuffer{max: stderrTailBytes}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = runnerProcAttr()
	// Pipes stay open while any grandchild holds them; never wait on them forever.
	cmd.WaitDelay = time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return processResult{StartErr: err}
	}
	if err := cmd.Start(); err != nil {
		return processResult{StartErr: err}
	}
	pgid := cmd.Process.Pid
	var res processResult
	if p.MemoryLimit > 0 {
		// The limit is set before the prompt is written: a child that reads its prompt first
		// (as claude does) does all its real work under it.
		res.LimitErr = setMemoryLimit(pgid, p.MemoryLimit)
	}
	go func() {
		// A child that exits without reading gets EPIPE here; its exit status tells the story.
		_, _ = stdin.Write(p.Stdin)
		_ = stdin.Close()
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	select {
	case res.WaitErr = <-waited:
	case <-ctx.Done():
		res.Cancelled = true
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		grace := p.Grace
		if grace <= 0 {
			grace = DefaultGrace
		}
		t := time.NewTimer(grace)
		select {
		case res.WaitErr = <-waited:
		case <-t.C:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			res.WaitErr = <-waited
		}
		t.Stop()
	}
	// Whatever the command left behind in its group dies with the lease.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if errors.Is(res.WaitErr, exec.ErrWaitDelay) {
		res.WaitErr = nil // the child exited; a grandchild held a pipe and was killed above
	}
	res.Stdout, res.Overflow, res.Stderr = stdout.buf.Bytes(), stdout.overflow, stderr.String()
	return res
}

// exitCode returns the child's exit status, or -1 when it did not exit normally.
func (r processResult) exitCode() int {
	var exitErr *exec.ExitError
	if errors.As(r.WaitErr, &exitErr) {
		return exitErr.ExitCode()
	}
	if r.WaitErr != nil {
		return -1
	}
	return 0
}

var _ io.Writer = (*limitedBuffer)(nil)

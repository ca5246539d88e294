package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sportsintel/enrich/ctl/entityfile"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// Exit codes. Scripts branch on 3, 4 and 5, so they must not change.
const (
	ExitOK                    = 0
	ExitFailure               = 1
	ExitUsage                 = 2
	ExitCompletedWithFailures = 3
	ExitCancelled             = 4
	ExitBudgetExhausted       = 5
)

// ExitError carries the exit code Main returns. Err may be nil when the
// verb already told the operator what happened (a batch summary).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

func usageErrorf(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// batchExitCode maps the state a batch ended in to the exit code of the
// verbs that wait for it.
func batchExitCode(state enrichv1.BatchState) int {
	switch state {
	case enrichv1.BatchState_BATCH_STATE_COMPLETED:
		return ExitOK
	case enrichv1.BatchState_BATCH_STATE_COMPLETED_WITH_FAILURES:
		return ExitCompletedWithFailures
	case enrichv1.BatchState_BATCH_STATE_CANCELLED:
		return ExitCancelled
	case enrichv1.BatchState_BATCH_STATE_BUDGET_EXHAUSTED:
		return ExitBudgetExhausted
	default:
		return ExitFailure
	}
}

// batchEnded reports whether a batch is in a final state.
func batchEnded(state enrichv1.BatchState) bool {
	switch state {
	case enrichv1.BatchState_BATCH_STATE_COMPLETED, enrichv1.BatchState_BATCH_STATE_COMPLETED_WITH_FAILURES,
		enrichv1.BatchState_BATCH_STATE_CANCELLED, enrichv1.BatchState_BATCH_STATE_BUDGET_EXHAUSTED:
		return true
	}
	return false
}

// reportError prints err for an operator and returns the exit code. gRPC
// errors print as "enrichctl: CODE: message"; messages of several lines
// (one per bad input line) start on their own line so each stays
// FILE:LINE-clickable.
func reportError(w io.Writer, err error, cfg globalConfig) int {
	if err == nil {
		return ExitOK
	}
	code := ExitFailure
	var ee *ExitError
	if errors.As(err, &ee) {
		code = ee.Code
		if ee.Err == nil {
			return code
		}
		err = ee.Err
	}
	var fileErr *entityfile.Error
	if errors.As(err, &fileErr) {
		// Already FILE:LINE: msg lines, like a compiler's.
		fmt.Fprintln(w, err)
		return code
	}
	// Not status.FromError: for a wrapped status it returns the whole
	// wrapped text as the message, "rpc error: code = ..." included.
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) && se.GRPCStatus().Code() != codes.OK {
		st := se.GRPCStatus()
		switch st.Code() {
		case codes.Canceled:
			fmt.Fprintln(w, "enrichctl: interrupted")
			return code
		}
		msg := st.Message()
		if strings.Contains(msg, "\n") {
			fmt.Fprintf(w, "enrichctl: %s:\n%s\n", st.Code(), msg)
		} else {
			fmt.Fprintf(w, "enrichctl: %s: %s\n", st.Code(), msg)
		}
		switch st.Code() {
		case codes.Unavailable:
			fmt.Fprintf(w, "enrichctl: is the coordinator running at %s? (set --addr or ENRICH_ADDR)\n", cfg.Addr)
		case codes.DeadlineExceeded:
			fmt.Fprintf(w, "enrichctl: no answer within --timeout %s\n", cfg.Timeout)
		}
		return code
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(w, "enrichctl: interrupted")
		return code
	}
	fmt.Fprintf(w, "enrichctl: %v\n", err)
	if code == ExitUsage {
		fmt.Fprintln(w, "Run 'enrichctl --help' for usage.")
	}
	return code
}

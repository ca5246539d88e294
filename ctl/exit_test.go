package ctl

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

func TestBatchExitCode(t *testing.T) {
	t.Parallel()

	for state, want := range map[enrichv1.BatchState]int{
		enrichv1.BatchState_BATCH_STATE_COMPLETED:               ExitOK,
		enrichv1.BatchState_BATCH_STATE_COMPLETED_WITH_FAILURES: ExitCompletedWithFailures,
		enrichv1.BatchState_BATCH_STATE_CANCELLED:               ExitCancelled,
		enrichv1.BatchState_BATCH_STATE_RUNNING:                 ExitFailure,
		enrichv1.BatchState_BATCH_STATE_PREPARED:                ExitFailure,
		enrichv1.BatchState_BATCH_STATE_UNSPECIFIED:             ExitFailure,
	} {
		require.Equal(t, want, batchExitCode(state), state.String())
	}
	require.Equal(t, 3, ExitCompletedWithFailures, "scripts depend on the number")
	require.Equal(t, 4, ExitCancelled, "scripts depend on the number")
}

func TestWatchEndedExitCode(t *testing.T) {
	t.Parallel()

	p := &printer{out: &bytes.Buffer{}, errw: &bytes.Buffer{}, now: time.Now}
	b := runningBatch()
	b.State = enrichv1.BatchState_BATCH_STATE_COMPLETED_WITH_FAILURES

	err := watchEnded(&lineRenderer{p: p}, b, p)
	var ee *ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, ExitCompletedWithFailures, ee.Code)
	require.Contains(t, p.out.(*bytes.Buffer).String(), "batch 20260108-120000-1a2b3c completed_with_failures\n")

	b.State = enrichv1.BatchState_BATCH_STATE_RUNNING
	err = watchEnded(&lineRenderer{p: p}, b, p)
	require.ErrorContains(t, err, "while batch 20260108-120000-1a2b3c was running")
	require.False(t, errors.As(err, &ee), "an unfinished batch is a plain error: exit 1")
}

func TestReportError(t *testing.T) {
	t.Parallel()

	cfg := globalConfig{Addr: "10.0.0.1:7400", Timeout: time.Second}
	for _, tc := range []struct {
		name string
		err  error
		code int
		want string
	}{
		{"Nil", nil, ExitOK, ""},
		{"Status", status.Error(codes.NotFound, "batch x not found"), ExitFailure, "enrichctl: NotFound: batch x not found\n"},
		{"WrappedStatus", fmt.Errorf("get: %w", status.Error(codes.NotFound, "batch x not found")), ExitFailure, "enrichctl: NotFound: batch x not found\n"},
		{"Unavailable", status.Error(codes.Unavailable, "connection refused"), ExitFailure,
			"enrichctl: Unavailable: connection refused\nenrichctl: is the coordinator running at 10.0.0.1:7400? (set --addr or ENRICH_ADDR)\n"},
		{"SilentExit", &ExitError{Code: ExitCancelled}, ExitCancelled, ""},
		{"Usage", usageErrorf("give BATCH"), ExitUsage, "enrichctl: give BATCH\nRun 'enrichctl --help' for usage.\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var w bytes.Buffer
			require.Equal(t, tc.code, reportError(&w, tc.err, cfg))
			require.Equal(t, tc.want, w.String())
		})
	}
}

func TestProgressLine(t *testing.T) {
	t.Parallel()

	now := time.Date(2026, 1, 8, 12, 0, 3, 0, time.UTC)
	require.Equal(t,
		"2026-01-08T12:00:03Z running entities 13/50 ok=12 failed=1 retrying=2 inflight=4 rate=390.0/min eta=3m10s cost=$1.50"+
			" | leagues 0/15 ok=0 failed=0 retrying=0 inflight=0 rate=0.0/min eta=? cost=$0.00",
		progressLine(runningBatch(), now))
}

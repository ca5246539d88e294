package runner_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/agent/runner"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
	"github.com/sportsintel/enrich/schemas"
)

func testLease() *enrichv1.Lease {
	return &enrichv1.Lease{
		Lease:   &enrichv1.LeaseRef{ItemId: 42, Token: 7},
		BatchId: "batch-1",
		Entity: &enrichv1.Entity{Id: "club-testville", Type: "Club", Name: "Testville Rovers FC",
			Attributes: map[string]string{"country": "Testland", "sport": "Football"}},
		InstanceType: "entities",
		Schema:       schemas.EntityDossier,
		Prompt:       "entities",
		Attempt:      1,
	}
}

func TestParseDelay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in       string
		min, max time.Duration
	}{
		{"", 0, 0},
		{"0", 0, 0},
		{"0s", 0, 0},
		{"2s", 2 * time.Second, 2 * time.Second},
		{"1s-3s", time.Second, 3 * time.Second},
		{"500ms-500ms", 500 * time.Millisecond, 500 * time.Millisecond},
		{"0-1m", 0, time.Minute},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			lo, hi, err := runner.ParseDelay(tc.in)
			require.NoError(t, err)
			require.Equal(t, tc.min, lo)
			require.Equal(t, tc.max, hi)
		})
	}
}

func TestParseDelayRejects(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"x", "3s-1s", "-1s", "1s-", "-1s-2s", "1s-x", "2", "1s-2s-3s"} {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			lo, hi, err := runner.ParseDelay(in)
			require.Error(t, err)
			require.ErrorContains(t, err, fmt.Sprintf("%q", in))
			require.Zero(t, lo)
			require.Zero(t, hi)
		})
	}
}

func TestOfflineRun(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)
	o := &runner.Offline{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, Now: func() time.Time { return now }}
	lease := testLease()
	out, err := o.Run(t.Context(), lease)
	require.NoError(t, err)
	require.NoError(t, schemas.Validate(lease.GetSchema(), out.Dossier))
	require.Equal(t, "offline", out.Metrics.GetRunner())
	require.GreaterOrEqual(t, out.Metrics.GetDuration().AsDuration(), time.Millisecond)

	want, err := runner.OfflineDossier(lease.GetEntity(), lease.GetInstanceType(), lease.GetSchema(), now)
	require.NoError(t, err)
	require.Equal(t, string(want), string(out.Dossier))
}

func TestOfflineRunDelayFor(t *testing.T) {
	t.Parallel()
	lease := testLease()
	var asked *enrichv1.Lease
	// The uniform range would take an hour: DelayFor must win over it.
	o := &runner.Offline{MinDelay: time.Hour, MaxDelay: 2 * time.Hour, DelayFor: func(l *enrichv1.Lease) time.Duration {
		asked = l
		return 30 * time.Millisecond
	}}
	start := time.Now()
	out, err := o.Run(t.Context(), lease)
	require.NoError(t, err)
	require.Same(t, lease, asked)
	require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
	require.Less(t, time.Since(start), 5*time.Second)
	require.GreaterOrEqual(t, out.Metrics.GetDuration().AsDuration(), 30*time.Millisecond)

	// A negative answer means no delay rather than a panic in the timer.
	o.DelayFor = func(*enrichv1.Lease) time.Duration { return -time.Second }
	_, err = o.Run(t.Context(), lease)
	require.NoError(t, err)
}

func TestOfflineRunCancelled(t *testing.T) {
	t.Parallel()
	o := &runner.Offline{MinDelay: time.Hour}
	ctx, cancel := context.WithCancelCause(t.Context())
	cause := errors.New("coordinator revoked the lease")
	time.AfterFunc(20*time.Millisecond, func() { cancel(cause) })

	start := time.Now()
	out, err := o.Run(ctx, testLease())
	require.Less(t, time.Since(start), 5*time.Second)
	require.Nil(t, out)
	var re *runner.Error
	require.ErrorAs(t, err, &re)
	require.True(t, re.Retryable)
	require.Contains(t, re.Message, "cancelled")
	require.Contains(t, re.Message, cause.Error())
}

func TestOfflineRunBadEntityIsPermanent(t *testing.T) {
	t.Parallel()
	lease := testLease()
	lease.Entity.Id = ""
	_, err := (&runner.Offline{}).Run(t.Context(), lease)
	var re *runner.Error
	require.ErrorAs(t, err, &re)
	require.False(t, re.Retryable)
	require.Contains(t, re.Message, "no id")
}

func TestAsError(t *testing.T) {
	t.Parallel()
	re := runner.AsError(errors.New("boom"))
	require.True(t, re.Retryable)
	require.Equal(t, "boom", re.Message)

	orig := &runner.Error{Retryable: false, Message: "bad input"}
	require.Same(t, orig, runner.AsError(fmt.Errorf("wrapped: %w", orig)))
}

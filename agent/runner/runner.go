// Package runner runs one lease: it turns an entity into a dossier. Offline fills a dossier from
// the entity record alone; Exec runs a command (Claude Code headless, or any program) per lease.
package runner

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// Runner produces a dossier for one lease. It must return when ctx ends.
type Runner interface {
	Run(ctx context.Context, lease *enrichv1.Lease) (*Output, error)
}

// Output is a finished run.
type Output struct {
	Dossier []byte
	Metrics *enrichv1.RunMetrics
}

// Error is a failed run. Runners return it (or wrap it) so the agent can tell the coordinator
// whether retrying can help, and decide for itself whether to slow down or stop (see Class).
type Error struct {
	Retryable bool
	// Class refines Retryable; see the Class constants. Kind() reads it.
	Class      Class
	Message    string
	StderrTail string
	// RetryAfter is the wait the model API asked for (ClassRateLimited), or 0 when it gave none.
	RetryAfter time.Duration
	// Metrics holds what the run used before it failed: failed runs cost money too.
	Metrics *enrichv1.RunMetrics
}

func (e *Error) Error() string { return e.Message }

// AsError turns any run error into an *Error; errors that are not an *Error are retryable.
func AsError(err error) *Error {
	var re *Error
	if errors.As(err, &re) {
		return re
	}
	return &Error{Retryable: true, Class: ClassTransient, Message: err.Error()}
}

// Offline is the built-in runner: no network, a dossier from the entity record only. Delay
// simulates work time, uniformly between MinDelay and MaxDelay.
type Offline struct {
	MinDelay, MaxDelay time.Duration
	// DelayFor, when set, decides each lease's work time instead of the uniform draw, so a
	// benchmark can know a batch's work before it runs (a draw inside the agent is unknowable
	// to whoever computes the ideal makespan).
	DelayFor func(*enrichv1.Lease) time.Duration
	Now      func() time.Time
}

func (o *Offline) Run(ctx context.Context, lease *enrichv1.Lease) (*Output, error) {
	start := time.Now()
	delay := o.delay(lease)
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, &Error{Retryable: true, Class: ClassTransient, Message: "cancelled: " + context.Cause(ctx).Error()}
		case <-t.C:
		}
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	doc, err := OfflineDossier(lease.GetEntity(), lease.GetInstanceType(), lease.GetSchema(), now())
	if err != nil {
		// The entity record itself cannot make a valid dossier: retrying gives the same answer.
		return nil, &Error{Retryable: false, Class: ClassPermanent, Message: fmt.Sprintf("offline dossier: %v", err)}
	}
	return &Output{Dossier: doc, Metrics: &enrichv1.RunMetrics{Duration: durationpb.New(time.Since(start)), Runner: "offline"}}, nil
}

func (o *Offline) delay(lease *enrichv1.Lease) time.Duration {
	if o.DelayFor != nil {
		return max(0, o.DelayFor(lease))
	}
	if o.MaxDelay > o.MinDelay {
		return o.MinDelay + rand.N(o.MaxDelay-o.MinDelay)
	}
	return o.MinDelay
}

// ParseDelay parses "2s" (fixed) or "1s-3s" (uniform range).
func ParseDelay(s string) (minDelay, maxDelay time.Duration, err error) {
	if s == "" || s == "0" {
		return 0, 0, nil
	}
	lo, hi, isRange := cut(s, '-')
	if minDelay, err = time.ParseDuration(lo); err != nil {
		return 0, 0, fmt.Errorf("delay %q: %w", s, err)
	}
	maxDelay = minDelay
	if isRange {
		if maxDelay, err = time.ParseDuration(hi); err != nil {
			return 0, 0, fmt.Errorf("delay %q: %w", s, err)
		}
	}
	if minDelay < 0 || maxDelay < minDelay {
		return 0, 0, fmt.Errorf("delay %q: want D or MIN-MAX with 0 <= MIN <= MAX", s)
	}
	return minDelay, maxDelay, nil
}

func cut(s string, sep byte) (string, string, bool) {
	for i := 1; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

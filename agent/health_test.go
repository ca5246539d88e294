package agent

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/agent/runner"
)

func newTestAgent(t *testing.T, slots int) *Agent {
	t.Helper()
	a, err := New(Config{Coordinator: "127.0.0.1:1", Types: []string{"entities"}, Slots: slots, Runner: &runner.Offline{}})
	require.NoError(t, err)
	return a
}

// A rate limit pauses requests for work for as long as the API asked, then halves how many runs
// go at once; each success grows it back by one.
func TestRateLimitSlowsTheAgentDown(t *testing.T) {
	a := newTestAgent(t, 8)
	c := &connection{}
	a.noteFailure(&runner.Error{Retryable: true, Class: runner.ClassRateLimited, RetryAfter: time.Hour, Message: "429"})
	require.Zero(t, a.creditsToAsk(c), "paused for the API's retry-after")
	require.Contains(t, a.heartbeatMsg().GetHeartbeat().GetHealthProblem(), "rate limited")

	a.mu.Lock()
	a.pausedUntil = time.Now().Add(-time.Second)
	a.mu.Unlock()
	require.Equal(t, 4, a.creditsToAsk(c), "half the slots after one rate limit")
	require.Empty(t, a.heartbeatMsg().GetHeartbeat().GetHealthProblem(), "the problem clears when the pause ends")

	c.requested = 0
	a.noteSuccess()
	a.noteSuccess()
	require.Equal(t, 6, a.creditsToAsk(c), "one more run at once per success")
	for range 10 {
		a.noteSuccess()
	}
	c.requested = 0
	require.Equal(t, 8, a.creditsToAsk(c), "never above the configured slots")
}

// A misconfigured host pauses the agent for UnhealthyPause; other failures change nothing.
func TestUnhealthyPausesTheAgent(t *testing.T) {
	a := newTestAgent(t, 2)
	c := &connection{}
	a.noteFailure(&runner.Error{Retryable: true, Message: "exit status 1"})
	require.Equal(t, 2, a.creditsToAsk(c), "an ordinary failure does not pause")

	c.requested = 0
	a.noteFailure(&runner.Error{Class: runner.ClassAgentUnhealthy, Message: "claude: executable file not found"})
	require.Zero(t, a.creditsToAsk(c))
	hb := a.heartbeatMsg().GetHeartbeat()
	require.Equal(t, "unhealthy: claude: executable file not found", hb.GetHealthProblem())
	a.mu.Lock()
	until := a.pausedUntil
	a.mu.Unlock()
	require.WithinDuration(t, time.Now().Add(DefaultUnhealthyPause), until, 5*time.Second)
}

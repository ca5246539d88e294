package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/coordinator/store"
	"github.com/sportsintel/enrich/coordinator/store/postgres"
	"github.com/sportsintel/enrich/coordinator/store/postgres/pgtest"
)

// A drain requested through the registry belongs to the agent id: it survives the serving
// coordinator's refreshes and the agent's reconnect to another coordinator, and goes once a
// Drain was sent or when it is older than the caller's cut-off.
func TestAgentDrainRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := postgres.Open(ctx, pgtest.Schema(t))
	require.NoError(t, err)
	defer st.Close()
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	rec := store.AgentRecord{AgentID: "a1", SessionID: "s1", Coordinator: "c1:7400", InstanceTypes: []string{"entities"},
		Slots: 4, ConnectedAt: t0, LastSeen: t0}
	other := store.AgentRecord{AgentID: "a2", SessionID: "s9", Coordinator: "c1:7400", ConnectedAt: t0, LastSeen: t0}
	require.NoError(t, st.PutAgents(ctx, []store.AgentRecord{rec, other}))

	_, err = st.RequestDrain(ctx, "nobody", time.Time{}, t0)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = st.RequestDrain(ctx, "a1", t0.Add(time.Second), t0)
	require.ErrorIs(t, err, store.ErrNotFound, "a row its coordinator stopped refreshing names no live agent")
	reqs, err := st.DrainRequests(ctx, []string{"a1", "a2"}, time.Time{})
	require.NoError(t, err)
	require.Empty(t, reqs, "a refused request is not recorded")
	got, err := st.RequestDrain(ctx, "a1", t0, t0)
	require.NoError(t, err)
	require.Equal(t, "s1", got.SessionID)
	require.Equal(t, "c1:7400", got.Coordinator)
	require.True(t, got.Draining)

	// The serving coordinator's next refresh (which does not know yet) keeps the mark.
	rec.LastSeen = t0.Add(time.Second)
	require.NoError(t, st.PutAgents(ctx, []store.AgentRecord{rec, other}))
	reqs, err = st.DrainRequests(ctx, []string{"a1", "a2", "a-unknown"}, t0)
	require.NoError(t, err)
	require.Equal(t, []string{"a1"}, reqs)
	none, err := st.DrainRequests(ctx, nil, t0)
	require.NoError(t, err)
	require.Empty(t, none)

	// The agent moves to another coordinator before the first acted: the request follows it.
	rec.SessionID, rec.Coordinator, rec.ConnectedAt, rec.LastSeen = "s2", "c2:7400", t0.Add(2*time.Second), t0.Add(2*time.Second)
	require.NoError(t, st.RemoveAgent(ctx, "a1", "s1"))
	require.NoError(t, st.PutAgents(ctx, []store.AgentRecord{rec}))
	reqs, err = st.DrainRequests(ctx, []string{"a1"}, t0)
	require.NoError(t, err)
	require.Equal(t, []string{"a1"}, reqs, "the request outlives the session it was made for")
	reqs, err = st.DrainRequests(ctx, []string{"a1"}, t0.Add(time.Millisecond))
	require.NoError(t, err)
	require.Empty(t, reqs, "a request older than the cut-off has lapsed")

	// Sent: gone, for this and every later session.
	require.NoError(t, st.DrainSent(ctx, "a1"))
	reqs, err = st.DrainRequests(ctx, []string{"a1"}, time.Time{})
	require.NoError(t, err)
	require.Empty(t, reqs)
	list, err := st.ListAgents(ctx, time.Time{})
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.False(t, list[0].Draining, "the new session's row shows what its coordinator published")
}

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

// A drain requested through the registry marks the agent's current session, survives its
// coordinator's refreshes of that session, and is gone once the agent reconnects.
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

	_, err = st.RequestDrain(ctx, "nobody", time.Time{})
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = st.RequestDrain(ctx, "a1", t0.Add(time.Second))
	require.ErrorIs(t, err, store.ErrNotFound, "a row its coordinator stopped refreshing names no live session")
	got, err := st.RequestDrain(ctx, "a1", t0)
	require.NoError(t, err)
	require.Equal(t, "s1", got.SessionID)
	require.Equal(t, "c1:7400", got.Coordinator)
	require.True(t, got.Draining)

	// The serving coordinator's next refresh (which does not know yet) keeps the mark.
	rec.LastSeen = t0.Add(time.Second)
	require.NoError(t, st.PutAgents(ctx, []store.AgentRecord{rec, other}))
	reqs, err := st.DrainRequests(ctx, []string{"s1", "s9", "s-unknown"})
	require.NoError(t, err)
	require.Equal(t, []string{"s1"}, reqs)
	none, err := st.DrainRequests(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, none)

	// A new session of the agent starts undrained: the request was for the one that ended.
	rec.SessionID, rec.ConnectedAt, rec.LastSeen = "s2", t0.Add(2*time.Second), t0.Add(2*time.Second)
	require.NoError(t, st.PutAgents(ctx, []store.AgentRecord{rec}))
	reqs, err = st.DrainRequests(ctx, []string{"s1", "s2"})
	require.NoError(t, err)
	require.Empty(t, reqs)
	list, err := st.ListAgents(ctx, time.Time{})
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.False(t, list[0].Draining)
}

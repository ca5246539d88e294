package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const ms = time.Millisecond

func TestWorkForIsReproducibleAndInRange(t *testing.T) {
	t.Parallel()
	seen := map[time.Duration]bool{}
	for _, id := range []string{"club-a", "club-b", "club-c", "club-d", "club-e"} {
		a, err := workFor(7, "persons", id)
		require.NoError(t, err)
		b, _ := workFor(7, "persons", id)
		require.Equal(t, a, b, "same seed and entity, same work")
		require.GreaterOrEqual(t, a, 300*ms)
		require.LessOrEqual(t, a, 600*ms)
		seen[a] = true
	}
	require.Greater(t, len(seen), 1, "entities draw different work")
	_, err := workFor(7, "venues", "x")
	require.Error(t, err)
}

func TestIdealMakespan(t *testing.T) {
	t.Parallel()
	jobs := []job{{typ: "a", work: 300 * ms}, {typ: "a", work: 100 * ms}, {typ: "a", work: 100 * ms}, {typ: "b", work: 100 * ms}}
	// One slot: all the work in a row.
	require.Equal(t, 600*ms, idealMakespan(jobs, 1, nil).ideal)
	// Two slots: the work halves.
	require.Equal(t, 300*ms, idealMakespan(jobs, 2, nil).ideal)
	// Many slots: nothing ends before the longest entity.
	b := idealMakespan(jobs, 10, nil)
	require.Equal(t, 300*ms, b.ideal)
	require.Equal(t, 4, b.effective, "no more slots busy than items")
	// A cap of one on type a: its 500 ms run in a row whatever the slots.
	b = idealMakespan(jobs, 10, map[string]int{"a": 1})
	require.Equal(t, 500*ms, b.ideal)
	require.Equal(t, 2, b.effective)
}

func TestListSchedule(t *testing.T) {
	t.Parallel()
	jobs := []job{{typ: "a", work: 100 * ms}, {typ: "a", work: 100 * ms}, {typ: "a", work: 100 * ms}, {typ: "a", work: 300 * ms}}
	// Greedy in order on two slots: the long job starts last and ends at 100+300.
	require.Equal(t, 400*ms, listSchedule(jobs, 2, nil))
	// Longest first reaches the ideal here.
	require.Equal(t, 300*ms, listSchedule(longestFirst(jobs), 2, nil))
	// A cap of one runs the type serially whatever the slots.
	require.Equal(t, 600*ms, listSchedule(jobs, 4, map[string]int{"a": 1}))
	// Never below the ideal, whatever the order.
	for _, slots := range []int{1, 2, 3, 5} {
		require.GreaterOrEqual(t, listSchedule(jobs, slots, nil), idealMakespan(jobs, slots, nil).ideal)
	}
}

package limit

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBuckets(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	b := NewBuckets(0.5, 3) // one every 2 s, three at once
	b.now = func() time.Time { return now }
	for range 3 {
		ok, _ := b.Allow("a")
		require.True(t, ok)
	}
	ok, wait := b.Allow("a")
	require.False(t, ok)
	require.Equal(t, 2*time.Second, wait)
	ok, _ = b.Allow("b")
	require.True(t, ok, "keys are independent")

	now = now.Add(2 * time.Second)
	ok, _ = b.Allow("a")
	require.True(t, ok, "one token refilled")
	ok, _ = b.Allow("a")
	require.False(t, ok)

	now = now.Add(time.Hour)
	for range 3 {
		ok, _ = b.Allow("a")
		require.True(t, ok, "refill is capped at the burst")
	}
	ok, _ = b.Allow("a")
	require.False(t, ok)

	var off *Buckets
	ok, _ = off.Allow("x")
	require.True(t, ok, "no limiter allows everything")
}

func TestBucketsPrune(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	b := NewBuckets(1, 1)
	b.now = func() time.Time { return now }
	for i := range maxKeys {
		b.Allow(string(rune(i)))
	}
	now = now.Add(time.Minute)
	b.Allow("new")
	require.Len(t, b.buckets, 1, "refilled buckets are forgotten when the map is full")
}

func TestCounter(t *testing.T) {
	t.Parallel()
	c := NewCounter(2)
	r1, ok := c.Acquire("a")
	require.True(t, ok)
	r2, ok := c.Acquire("a")
	require.True(t, ok)
	_, ok = c.Acquire("a")
	require.False(t, ok)
	_, ok = c.Acquire("b")
	require.True(t, ok)
	r1()
	r1() // releasing twice gives back one place only
	r3, ok := c.Acquire("a")
	require.True(t, ok)
	_, ok = c.Acquire("a")
	require.False(t, ok)
	r2()
	r3()
	require.NotContains(t, c.n, "a")
}

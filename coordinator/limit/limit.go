// Package limit holds the coordinator's per-agent admission limits: a token bucket for the
// rate of new sessions (Hello) per agent id, and a counter of concurrent streams per identity.
// Both are in memory and per coordinator process.
package limit

import (
	"sync"
	"time"
)

// Buckets is a token bucket per key: each key may take Burst at once and then one every
// 1/Rate seconds.
type Buckets struct {
	Rate  float64 // tokens per second
	Burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxKeys bounds the map; idle full buckets are dropped when it grows past this.
const maxKeys = 10_000

// NewBuckets returns buckets refilling at rate per second up to burst.
func NewBuckets(rate float64, burst int) *Buckets {
	return &Buckets{Rate: rate, Burst: burst, now: time.Now, buckets: map[string]*bucket{}}
}

// Allow takes one token for key. When none is left it returns false and how long until one is.
func (b *Buckets) Allow(key string) (bool, time.Duration) {
	if b == nil || b.Rate <= 0 || b.Burst <= 0 {
		return true, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	bk, ok := b.buckets[key]
	if !ok {
		if len(b.buckets) >= maxKeys {
			b.prune(now)
		}
		bk = &bucket{tokens: float64(b.Burst), last: now}
		b.buckets[key] = bk
	}
	bk.tokens = min(float64(b.Burst), bk.tokens+now.Sub(bk.last).Seconds()*b.Rate)
	bk.last = now
	if bk.tokens >= 1 {
		bk.tokens--
		return true, 0
	}
	wait := time.Duration((1 - bk.tokens) / b.Rate * float64(time.Second))
	return false, wait
}

// prune drops buckets that have refilled completely: forgetting them changes nothing.
func (b *Buckets) prune(now time.Time) {
	for k, bk := range b.buckets {
		if bk.tokens+now.Sub(bk.last).Seconds()*b.Rate >= float64(b.Burst) {
			delete(b.buckets, k)
		}
	}
}

// Counter counts concurrent holders per key up to Max.
type Counter struct {
	Max int

	mu sync.Mutex
	n  map[string]int
}

// NewCounter returns a counter allowing max per key (0 or less: unlimited).
func NewCounter(max int) *Counter { return &Counter{Max: max, n: map[string]int{}} }

// Acquire takes a place for key; release gives it back. ok is false when key is at Max.
func (c *Counter) Acquire(key string) (release func(), ok bool) {
	if c == nil || c.Max <= 0 {
		return func() {}, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] >= c.Max {
		return nil, false
	}
	c.n[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.n[key]--; c.n[key] <= 0 {
				delete(c.n, key)
			}
		})
	}, true
}

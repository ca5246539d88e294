package agent

import (
	"slices"
	"sync"
	"time"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// stats measures lease dispatch latency: the time from asking for a lease (sending a credit) to
// receiving it. Credits are served in order, so a FIFO of send times pairs each lease with the
// credit it consumed.
type stats struct {
	mu        sync.Mutex
	asked     []time.Time
	latencies []time.Duration
	runsEnded int
	// prom is set by RegisterMetrics; nil when the agent exports no metrics.
	prom *runMetrics
}

// maxSamples bounds memory in long-running agents; benchmarks stay below it.
const maxSamples = 1 << 20

func (s *stats) creditsSent(n int) {
	now := time.Now()
	s.mu.Lock()
	for range n {
		s.asked = append(s.asked, now)
	}
	s.mu.Unlock()
}

// sessionStarted forgets credits asked of an earlier session: the new one starts from zero.
func (s *stats) sessionStarted() {
	s.mu.Lock()
	s.asked = s.asked[:0]
	s.mu.Unlock()
}

func (s *stats) leaseReceived() {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.asked) == 0 {
		return
	}
	asked := s.asked[0]
	s.asked = s.asked[1:]
	if len(s.latencies) < maxSamples {
		s.latencies = append(s.latencies, now.Sub(asked))
	}
	if s.prom != nil {
		s.prom.dispatch.Observe(now.Sub(asked).Seconds())
	}
}

// runEnded counts a finished run; msg is what it reports (result, failure or cancel ack).
func (s *stats) runEnded(lease *enrichv1.Lease, msg *enrichv1.ConnectRequest) {
	s.mu.Lock()
	s.runsEnded++
	prom := s.prom
	s.mu.Unlock()
	if prom != nil {
		prom.observeRun(lease, msg)
	}
}

// Stats is a snapshot of an agent's measurements.
type Stats struct {
	RunsEnded int
	// DispatchLatencies are sorted ascending.
	DispatchLatencies []time.Duration
}

// Stats returns what the agent measured so far.
func (a *Agent) Stats() Stats {
	a.stats.mu.Lock()
	defer a.stats.mu.Unlock()
	lat := slices.Clone(a.stats.latencies)
	slices.Sort(lat)
	return Stats{RunsEnded: a.stats.runsEnded, DispatchLatencies: lat}
}

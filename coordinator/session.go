package coordinator

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/sportsintel/enrich/coordinator/store"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// leaseInfo is what a session remembers of a lease it holds.
type leaseInfo struct {
	token        int64
	instanceType string
	entityID     string
	// missed counts consecutive heartbeats that did not list the lease.
	missed int
}

// missedHeartbeatsToRelease is how many heartbeats in a row may omit a lease before the
// coordinator takes it back. One is not enough: a heartbeat can cross a lease on the wire.
const missedHeartbeatsToRelease = 2

// session is one connected agent stream. Only its writer goroutine calls stream.Send; everyone
// else queues messages with send.
type session struct {
	id          string
	agentID     string
	hostname    string
	version     string
	types       []string
	slots       int
	labels      map[string]string
	connectedAt time.Time

	out    chan *enrichv1.ConnectResponse
	done   chan struct{}
	cancel context.CancelFunc

	// grantMu is held by the dispatcher from reading the session's credits to queueing the
	// leases it claimed for them, and by stopGranting: a Drain queued by stopGranting comes
	// after every lease the session was granted, never before one.
	grantMu sync.Mutex

	mu            sync.Mutex
	credits       int
	creditAt      []time.Time // arrival of each outstanding credit, oldest first
	inFlight      map[int64]leaseInfo
	lastHeartbeat time.Time
	draining      bool
	healthProblem string
}

func newSession(id string, hello *enrichv1.Hello, now time.Time, cancel context.CancelFunc) *session {
	return &session{
		id:            id,
		agentID:       hello.GetAgentId(),
		hostname:      hello.GetHostname(),
		version:       hello.GetVersion(),
		types:         slices.Clone(hello.GetInstanceTypes()),
		slots:         int(hello.GetSlots()),
		labels:        hello.GetLabels(),
		connectedAt:   now,
		lastHeartbeat: now,
		out:           make(chan *enrichv1.ConnectResponse, 1024),
		done:          make(chan struct{}),
		cancel:        cancel,
		inFlight:      map[int64]leaseInfo{},
	}
}

// send queues a message for the session's writer; it gives up when the session has ended.
func (s *session) send(msg *enrichv1.ConnectResponse) bool {
	select {
	case s.out <- msg:
		return true
	case <-s.done:
		return false
	}
}

// addCredit records n more wanted leases. Outstanding credits never exceed the agent's slots.
// Leases in flight are not subtracted: the agent frees a slot when its runner ends, before the
// result is committed here, and counting both would lose that credit.
func (s *session) addCredit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining || n <= 0 {
		return
	}
	before := s.credits
	s.credits = min(s.credits+n, s.slots)
	now := time.Now()
	for range s.credits - before {
		s.creditAt = append(s.creditAt, now)
	}
}

// wanted returns the session's outstanding credits, 0 while draining.
func (s *session) wanted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return 0
	}
	return s.credits
}

// granted records leases handed to the session and returns when the credits they consume arrived.
func (s *session) granted(leases map[int64]leaseInfo) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, l := range leases {
		s.inFlight[id] = l
	}
	s.credits = max(0, s.credits-len(leases))
	n := min(len(leases), len(s.creditAt))
	asked := s.creditAt[:n:n]
	s.creditAt = s.creditAt[n:]
	return asked
}

// hold records leases the agent reported holding after a reconnect.
func (s *session) hold(id int64, l leaseInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight[id] = l
}

// release forgets a lease if it is still the one the session holds.
func (s *session) release(itemID, token int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.inFlight[itemID]; ok && l.token <= token {
		delete(s.inFlight, itemID)
	}
}

func (s *session) lease(itemID int64) (leaseInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.inFlight[itemID]
	return l, ok
}

// unlisted records a heartbeat's list of running leases and returns the leases the session holds
// that the agent has now left out of missedHeartbeatsToRelease heartbeats in a row: the agent
// no longer runs them (its runner died, or it lost them), so they must not wait for their TTL.
// They are forgotten here; the caller ends them in the store.
func (s *session) unlisted(listed map[int64]int64) []store.LeaseRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gone []store.LeaseRef
	for id, l := range s.inFlight {
		if tok, ok := listed[id]; ok && tok == l.token {
			l.missed = 0
			s.inFlight[id] = l
			continue
		}
		l.missed++
		if l.missed < missedHeartbeatsToRelease {
			s.inFlight[id] = l
			continue
		}
		delete(s.inFlight, id)
		gone = append(gone, store.LeaseRef{ItemID: id, Token: l.token})
	}
	return gone
}

func (s *session) heartbeat(now time.Time, healthProblem string) {
	s.mu.Lock()
	s.lastHeartbeat = now
	s.healthProblem = healthProblem
	s.mu.Unlock()
}

func (s *session) problem() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.healthProblem
}

// stopGranting marks the session draining and queues msg (a Drain) behind every lease already
// granted to it. An agent told to move on leaves its stream a moment after the Drain; a lease
// queued behind it would be lost with the stream and cost its entity an attempt.
func (s *session) stopGranting(msg *enrichv1.ConnectResponse) bool {
	s.grantMu.Lock()
	defer s.grantMu.Unlock()
	s.drain()
	return s.send(msg)
}

func (s *session) drain() {
	s.mu.Lock()
	s.draining = true
	s.credits = 0
	s.creditAt = nil
	s.mu.Unlock()
}

func (s *session) info(coordinator string) *enrichv1.AgentInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &enrichv1.AgentInfo{
		AgentId:       s.agentID,
		SessionId:     s.id,
		Hostname:      s.hostname,
		Version:       s.version,
		InstanceTypes: s.types,
		Slots:         int32(s.slots),
		InFlight:      int32(len(s.inFlight)),
		ConnectedAt:   timestamp(s.connectedAt),
		LastHeartbeat: timestamp(s.lastHeartbeat),
		Draining:      s.draining,
		HealthProblem: s.healthProblem,
		Labels:        s.labels,
		Coordinator:   coordinator,
	}
}

// registry holds the connected sessions.
type registry struct {
	mu       sync.Mutex
	byID     map[string]*session
	byAgent  map[string]*session
	rotation int
}

func newRegistry() *registry {
	return &registry{byID: map[string]*session{}, byAgent: map[string]*session{}}
}

// add registers s and returns the session it replaces (same agent id), if any.
func (r *registry) add(s *session) *session {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.byAgent[s.agentID]
	if old != nil {
		delete(r.byID, old.id)
	}
	r.byID[s.id] = s
	r.byAgent[s.agentID] = s
	return old
}

func (r *registry) remove(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byID, s.id)
	if r.byAgent[s.agentID] == s {
		delete(r.byAgent, s.agentID)
	}
}

func (r *registry) get(id string) *session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id]
}

func (r *registry) agent(agentID string) *session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byAgent[agentID]
}

// snapshot returns the sessions, rotated on every call so no session is always served first.
func (r *registry) snapshot() []*session {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*session, 0, len(r.byID))
	for _, s := range r.byID {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *session) int {
		if a.id < b.id {
			return -1
		}
		return 1
	})
	if len(out) > 0 {
		r.rotation = (r.rotation + 1) % len(out)
		out = append(out[r.rotation:], out[:r.rotation]...)
	}
	return out
}

package store

import (
	"context"
	"time"
)

// The interfaces below are optional: a backend that several coordinators share implements them,
// and the coordinator uses them when they are there. An embedded backend (one coordinator per
// file) needs none of them: its own memory already knows every agent, it is always the only
// reaper, and its own publishes are every change there is.

// AgentRecord is one agent session as the coordinator serving it last reported it.
type AgentRecord struct {
	AgentID       string
	SessionID     string
	Coordinator   string
	Hostname      string
	Version       string
	InstanceTypes []string
	Slots         int
	InFlight      int
	Labels        map[string]string
	Draining      bool
	ConnectedAt   time.Time
	LastHeartbeat time.Time
	// LastSeen is when the serving coordinator last confirmed the session is connected.
	LastSeen time.Time
}

// AgentRegistry keeps the agents connected to every coordinator of a fleet, so any coordinator
// can list them. One agent id has at most one row: a reconnect elsewhere replaces it.
type AgentRegistry interface {
	// PutAgents inserts or refreshes the given sessions in one round trip.
	PutAgents(ctx context.Context, agents []AgentRecord) error
	// RemoveAgent deletes the agent's row if it still names that session (a newer session on
	// another coordinator is left alone).
	RemoveAgent(ctx context.Context, agentID, sessionID string) error
	// ListAgents returns the agents seen at or after since, by agent id.
	ListAgents(ctx context.Context, since time.Time) ([]AgentRecord, error)
	// PruneAgents deletes rows last seen before before: their coordinator died without saying so.
	PruneAgents(ctx context.Context, before time.Time) (int, error)
}

// Leadership grants a named, time-bound lease to one holder at a time across a fleet.
type Leadership interface {
	// TryLead takes or renews the named lease for holder for ttl and reports whether holder now
	// holds it. It never blocks on another holder.
	TryLead(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// Resign gives the lease up at once if holder holds it, so a successor need not wait out the ttl.
	Resign(ctx context.Context, name, holder string) error
}

// ChangeFeed tells a coordinator about batch changes that other coordinators committed.
type ChangeFeed interface {
	// FollowChanges calls fn with the id of each batch that changed until ctx ends. Delivery is
	// best effort (a reconnect may miss some): callers keep polling as well.
	FollowChanges(ctx context.Context, fn func(batchID string)) error
}

// AgentDrains carries an operator's drain of an agent to the coordinator that serves its stream,
// so `enrichctl agents drain` works through any coordinator of a fleet. A request belongs to the
// agent id, not to one session of it: the coordinator serving the agent reads it on its next
// registry refresh, and a coordinator accepting a new session of the agent reads it before it
// grants anything, so a request made while the agent moves to another coordinator is not lost.
// Only the holder of a stream may send on it, so the store only keeps the request.
type AgentDrains interface {
	// RequestDrain records a drain of the agent at now, marks its registry row draining (for
	// listings) and returns the row. It returns ErrNotFound when no coordinator has published the
	// agent at or after since: a request for an agent nobody serves would only wait for a later
	// start of it.
	RequestDrain(ctx context.Context, agentID string, since, now time.Time) (AgentRecord, error)
	// DrainRequests returns, of the given agent ids, those with a request made at or after since;
	// older requests count as lapsed.
	DrainRequests(ctx context.Context, agentIDs []string, since time.Time) ([]string, error)
	// DrainSent removes the agent's request: a Drain went out on one of its sessions.
	DrainSent(ctx context.Context, agentID string) error
}

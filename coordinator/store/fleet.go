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
// so `enrichctl agents drain` works through any coordinator of a fleet. A request is a mark on
// the agent's registry row; the serving coordinator reads it on its next registry refresh and
// drains the session itself (only the holder of a stream may send on it).
type AgentDrains interface {
	// RequestDrain marks the agent's current session as draining and returns its row. It returns
	// ErrNotFound when no coordinator has published the agent at or after since. The mark
	// survives the serving coordinator's refreshes of that session and dies with the session.
	RequestDrain(ctx context.Context, agentID string, since time.Time) (AgentRecord, error)
	// DrainRequests returns, of the given sessions, those whose rows are marked draining.
	DrainRequests(ctx context.Context, sessionIDs []string) ([]string, error)
}

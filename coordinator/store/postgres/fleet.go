package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sportsintel/enrich/coordinator/store"
)

var _ store.AgentDrains = (*Store)(nil)

func (s *Store) PutAgents(ctx context.Context, agents []store.AgentRecord) error {
	if len(agents) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, a := range agents {
		labels, err := json.Marshal(a.Labels)
		if err != nil {
			return fmt.Errorf("agent %s labels: %w", a.AgentID, err)
		}
		types := a.InstanceTypes
		if types == nil {
			types = []string{}
		}
		b.Queue(`INSERT INTO agents (agent_id, session_id, coordinator, hostname, version, instance_types, slots, in_flight,
				labels, draining, connected_at, last_heartbeat, last_seen)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
			ON CONFLICT (agent_id) DO UPDATE SET session_id = EXCLUDED.session_id, coordinator = EXCLUDED.coordinator,
				hostname = EXCLUDED.hostname, version = EXCLUDED.version, instance_types = EXCLUDED.instance_types,
				slots = EXCLUDED.slots, in_flight = EXCLUDED.in_flight, labels = EXCLUDED.labels,
				-- A drain another coordinator requested for this session stays until its holder acts on it.
				draining = EXCLUDED.draining OR (agents.draining AND agents.session_id = EXCLUDED.session_id),
				connected_at = EXCLUDED.connected_at, last_heartbeat = EXCLUDED.last_heartbeat, last_seen = EXCLUDED.last_seen
			-- An older session's refresh, racing a reconnect to another coordinator, must not win.
			WHERE agents.session_id = EXCLUDED.session_id OR agents.connected_at <= EXCLUDED.connected_at`,
			a.AgentID, a.SessionID, a.Coordinator, a.Hostname, a.Version, types, a.Slots, a.InFlight, labels, a.Draining,
			ms(a.ConnectedAt), ms(a.LastHeartbeat), ms(a.LastSeen))
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("register agents: %w", err)
	}
	return nil
}

func (s *Store) RemoveAgent(ctx context.Context, agentID, sessionID string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM agents WHERE agent_id = $1 AND session_id = $2`, agentID, sessionID); err != nil {
		return fmt.Errorf("unregister agent %s: %w", agentID, err)
	}
	return nil
}

func (s *Store) ListAgents(ctx context.Context, since time.Time) ([]store.AgentRecord, error) {
	return s.listAgents(ctx, `last_seen >= $1`, ms(since))
}

// listAgents reads the agent rows that match where (a condition on the agents table, with args).
func (s *Store) listAgents(ctx context.Context, where string, args ...any) ([]store.AgentRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT agent_id, session_id, coordinator, hostname, version, instance_types, slots, in_flight,
		labels, draining, connected_at, last_heartbeat, last_seen FROM agents WHERE `+where+` ORDER BY agent_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer rows.Close()
	var out []store.AgentRecord
	for rows.Next() {
		var a store.AgentRecord
		var labels []byte
		var connected, heartbeat, seen int64
		if err := rows.Scan(&a.AgentID, &a.SessionID, &a.Coordinator, &a.Hostname, &a.Version, &a.InstanceTypes, &a.Slots,
			&a.InFlight, &labels, &a.Draining, &connected, &heartbeat, &seen); err != nil {
			return nil, fmt.Errorf("scan agent: %w", err)
		}
		if err := json.Unmarshal(labels, &a.Labels); err != nil {
			return nil, fmt.Errorf("agent %s labels: %w", a.AgentID, err)
		}
		a.ConnectedAt, a.LastHeartbeat, a.LastSeen = fromMS(connected), fromMS(heartbeat), fromMS(seen)
		out = append(out, a)
	}
	return out, rows.Err()
}

func (s *Store) RequestDrain(ctx context.Context, agentID string, since, now time.Time) (store.AgentRecord, error) {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// Only a row refreshed recently names a live agent: a request for one that is gone would
		// wait silently for whatever starts under its id next, so it is refused as not found.
		tag, err := tx.Exec(ctx, `UPDATE agents SET draining = true WHERE agent_id = $1 AND last_seen >= $2`, agentID, ms(since))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("agent %s: %w", agentID, store.ErrNotFound)
		}
		_, err = tx.Exec(ctx, `INSERT INTO agent_drains (agent_id, requested_at) VALUES ($1, $2)
			ON CONFLICT (agent_id) DO UPDATE SET requested_at = EXCLUDED.requested_at`, agentID, ms(now))
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return store.AgentRecord{}, err
	}
	if err != nil {
		return store.AgentRecord{}, fmt.Errorf("request drain of agent %s: %w", agentID, err)
	}
	recs, err := s.listAgents(ctx, `agent_id = $1`, agentID)
	if err != nil {
		return store.AgentRecord{}, err
	}
	if len(recs) == 0 {
		// Its session ended in between; the request waits for the agent's next session.
		return store.AgentRecord{AgentID: agentID, Draining: true}, nil
	}
	return recs[0], nil
}

func (s *Store) DrainRequests(ctx context.Context, agentIDs []string, since time.Time) ([]string, error) {
	if len(agentIDs) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT agent_id FROM agent_drains WHERE agent_id = ANY($1) AND requested_at >= $2 ORDER BY agent_id`,
		agentIDs, ms(since))
	if err != nil {
		return nil, fmt.Errorf("read drain requests: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read drain requests: %w", err)
	}
	return out, nil
}

func (s *Store) DrainSent(ctx context.Context, agentID string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM agent_drains WHERE agent_id = $1`, agentID); err != nil {
		return fmt.Errorf("clear drain request of agent %s: %w", agentID, err)
	}
	return nil
}

func (s *Store) PruneAgents(ctx context.Context, before time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM agents WHERE last_seen < $1`, ms(before))
	if err != nil {
		return 0, fmt.Errorf("prune agents: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

func (s *Store) TryLead(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	// The database's clock decides, so coordinators whose clocks disagree still agree.
	var got string
	err := s.pool.QueryRow(ctx, `INSERT INTO leaders (name, holder, expires_at) VALUES ($1, $2, clock_timestamp() + $3 * interval '1 millisecond')
		ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
		WHERE leaders.holder = EXCLUDED.holder OR leaders.expires_at < clock_timestamp()
		RETURNING holder`, name, holder, ttl.Milliseconds()).Scan(&got)
	if err == pgx.ErrNoRows {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("leader lease %s: %w", name, err)
	}
	return got == holder, nil
}

func (s *Store) Resign(ctx context.Context, name, holder string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM leaders WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return fmt.Errorf("resign leader lease %s: %w", name, err)
	}
	return nil
}

// FollowChanges LISTENs on one dedicated connection and reconnects with backoff when it drops.
// Notifications sent while it was reconnecting are lost; watchers poll as well, so they catch up.
func (s *Store) FollowChanges(ctx context.Context, fn func(batchID string)) error {
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		if err := s.listen(ctx, fn, func() { backoff = 100 * time.Millisecond }); ctx.Err() != nil {
			return nil
		} else if err != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
		}
	}
}

func (s *Store) listen(ctx context.Context, fn func(string), connected func()) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A LISTENing connection must not go back to the pool: hijack it and close it ourselves.
	pc := conn.Hijack()
	defer pc.Close(context.Background())
	if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return err
	}
	connected()
	for {
		n, err := pc.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}

package graph

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	neo4jconfig "github.com/neo4j/neo4j-go-driver/v5/neo4j/config"
)

// Conn says where the server is.
type Conn struct {
	URI, User, Password, Database string
}

// Redacted is the URI without user information, for reports and logs.
func (c Conn) Redacted() string {
	u, err := url.Parse(c.URI)
	if err != nil {
		return "(unparseable uri)"
	}
	u.User = nil
	return u.String()
}

// Open connects a driver. It does not dial: the first statement does, and its failure is retried
// like any other.
func Open(c Conn) (neo4j.DriverWithContext, error) {
	auth := neo4j.NoAuth()
	if c.Password != "" {
		auth = neo4j.BasicAuth(c.User, c.Password, "")
	}
	d, err := neo4j.NewDriverWithContext(c.URI, auth, func(cfg *neo4jconfig.Config) {
		// The sink retries with its own budget; keep each driver-level attempt short so an
		// outage is noticed and reported, not hidden inside one call.
		cfg.MaxTransactionRetryTime = 5 * time.Second
		cfg.SocketConnectTimeout = 5 * time.Second
		cfg.ConnectionAcquisitionTimeout = 30 * time.Second
	})
	if err != nil {
		return nil, fmt.Errorf("neo4j driver for %s: %w", c.Redacted(), err)
	}
	return d, nil
}

// Sink writes plans to one server.
type Sink struct {
	Driver   neo4j.DriverWithContext
	Database string
	Opts     Options
	// RetryTimeout bounds the retries of one chunk; 0 means two minutes.
	RetryTimeout time.Duration
	// BaseDelay is the first retry delay (doubling, with jitter, up to 10s); 0 means 250ms.
	BaseDelay time.Duration
	// OnChunk, when set, is called after each committed chunk with the count done and the total.
	OnChunk func(done, total int)
	// Logf, when set, receives retry notices.
	Logf func(format string, args ...any)
}

// EnsureSchema creates the uniqueness constraints if they do not exist yet.
func (s *Sink) EnsureSchema(ctx context.Context) error {
	if err := s.Opts.check(); err != nil {
		return err
	}
	var rep Report
	for _, st := range s.Opts.schemaStatements() {
		if err := s.run(ctx, st.text, nil, &rep); err != nil {
			return fmt.Errorf("create constraint: %w", err)
		}
	}
	return nil
}

// Write writes the plan, validates what the server then holds and returns the report. On error
// the report says how far it got.
func (s *Sink) Write(ctx context.Context, p *Plan) (*Report, error) {
	rep := &Report{Target: "neo4j", Database: s.Database, Nodes: len(p.Nodes), Rels: len(p.Rels),
		Sources: len(p.Sources), Skipped: slices.Clone(p.Skipped), Unlabelled: p.Unlabelled}
	if rep.Skipped == nil {
		rep.Skipped = []Skipped{}
	}
	if err := s.EnsureSchema(ctx); err != nil {
		return rep, err
	}
	rels, err := s.resolveTargets(ctx, p, rep)
	if err != nil {
		return rep, err
	}
	rep.Rels = len(rels)
	stmts := s.Opts.writeStatements(p, rels)
	total := 0
	for _, st := range stmts {
		total += len(chunks(st.rows, s.Opts.BatchSize))
	}
	done := 0
	for _, st := range stmts {
		for _, rows := range chunks(st.rows, s.Opts.BatchSize) {
			if err := s.run(ctx, st.text, map[string]any{"rows": rows}, rep); err != nil {
				return rep, fmt.Errorf("write %s (chunk %d of %d): %w", st.kind, done+1, total, err)
			}
			done++
			if s.OnChunk != nil {
				s.OnChunk(done, total)
			}
		}
	}
	if err := s.validate(ctx, p, rels, rep); err != nil {
		return rep, fmt.Errorf("validate: %w", err)
	}
	return rep, nil
}

// resolveTargets looks up the relationship targets that are not entities of this batch. Under
// missing_target: report the relationships to absent targets are left out; under stub they are
// kept and the targets become stubs. Either way the report lists every target that is not an
// enriched entity.
func (s *Sink) resolveTargets(ctx context.Context, p *Plan, rep *Report) ([]Rel, error) {
	ext := p.ExternalTargets()
	rep.Unverified = []Target{}
	if len(ext) == 0 {
		return p.Rels, nil
	}
	type state struct{ found, stub bool }
	states := map[string]state{}
	query := fmt.Sprintf("UNWIND $ids AS id OPTIONAL MATCH (t:%s {id: id}) "+
		"RETURN id, t IS NOT NULL AS found, coalesce(t:%s, false) AS stub",
		q(s.Opts.EntityLabel), q(s.Opts.UnverifiedLabel))
	err := s.retry(ctx, rep, func() error {
		recs, err := neo4j.ExecuteQuery(ctx, s.Driver, query, map[string]any{"ids": ext},
			neo4j.EagerResultTransformer, neo4j.ExecuteQueryWithDatabase(s.Database), neo4j.ExecuteQueryWithReadersRouting())
		if err != nil {
			return err
		}
		for _, r := range recs.Records {
			id, _ := r.Get("id")
			found, _ := r.Get("found")
			stub, _ := r.Get("stub")
			states[id.(string)] = state{found: found.(bool), stub: stub.(bool)}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up relationship targets: %w", err)
	}
	from := map[string][]string{}
	for _, r := range p.Rels {
		from[r.To] = append(from[r.To], r.From+" "+r.Type)
	}
	var keep []Rel
	for _, r := range p.Rels {
		st, external := states[r.To]
		if external && !st.found && s.Opts.MissingTarget == MissingTargetReport {
			continue
		}
		keep = append(keep, r)
	}
	for _, id := range ext {
		st := states[id]
		switch {
		case st.found && !st.stub:
			continue // an entity enriched earlier or loaded by the operator
		case !st.found && s.Opts.MissingTarget == MissingTargetReport:
			rep.Unverified = append(rep.Unverified, Target{ID: id, Action: "reported", From: from[id]})
		default:
			rep.Unverified = append(rep.Unverified, Target{ID: id, Action: "stub", From: from[id]})
		}
	}
	return keep, nil
}

// run executes one statement in a managed write transaction, retrying failures that another try
// can fix, and adds its counters to rep.
func (s *Sink) run(ctx context.Context, text string, params map[string]any, rep *Report) error {
	return s.retry(ctx, rep, func() error {
		sess := s.Driver.NewSession(ctx, neo4j.SessionConfig{DatabaseName: s.Database, AccessMode: neo4j.AccessModeWrite})
		defer sess.Close(ctx)
		out, err := sess.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
			res, err := tx.Run(ctx, text, params)
			if err != nil {
				return nil, err
			}
			return res.Consume(ctx)
		})
		if err != nil {
			return err
		}
		c := out.(neo4j.ResultSummary).Counters()
		rep.Transactions++
		rep.Counters.add(Counters{NodesCreated: c.NodesCreated(), NodesDeleted: c.NodesDeleted(),
			RelationshipsCreated: c.RelationshipsCreated(), RelationshipsDeleted: c.RelationshipsDeleted(),
			PropertiesSet: c.PropertiesSet(), LabelsAdded: c.LabelsAdded(), LabelsRemoved: c.LabelsRemoved()})
		return nil
	})
}

// retry calls f until it succeeds, fails with an error no retry can fix, the context ends or the
// retry budget is spent. Delays grow exponentially with full jitter.
func (s *Sink) retry(ctx context.Context, rep *Report, f func() error) error {
	budget := cmpDur(s.RetryTimeout, 2*time.Minute)
	delay := cmpDur(s.BaseDelay, 250*time.Millisecond)
	deadline := time.Now().Add(budget)
	for {
		err := f()
		if err == nil || !Retryable(err) || ctx.Err() != nil {
			return err
		}
		if time.Now().Add(delay).After(deadline) {
			return fmt.Errorf("%w after %s of retries: %w", ErrUnavailable, budget, err)
		}
		rep.Retries++
		if s.Logf != nil {
			s.Logf("neo4j write failed, retrying in %s: %v", delay, err)
		}
		t := time.NewTimer(delay/2 + rand.N(delay/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, 10*time.Second)
	}
}

// ErrUnavailable marks a write that gave up because the server stayed unreachable for the whole
// retry budget. Its text is part of the recorded consolidation error (see Unavailable), so a
// restarted coordinator still knows that a later try may succeed.
var ErrUnavailable = errors.New("neo4j unavailable")

// Unavailable reports whether a recorded error message came from ErrUnavailable.
func Unavailable(message string) bool {
	return strings.Contains(message, ErrUnavailable.Error()+" after ")
}

// Retryable reports whether err may go away on another try: the server is unreachable,
// restarting, or reported a transient error.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if neo4j.IsRetryable(err) || neo4j.IsConnectivityError(err) {
		return true
	}
	// The driver gives up on its own short retry budget with this error; the cause decides.
	var limit *neo4j.TransactionExecutionLimit
	if errors.As(err, &limit) {
		for _, e := range limit.Errors {
			if Retryable(e) {
				return true
			}
		}
		return false
	}
	var ne *neo4j.Neo4jError
	if errors.As(err, &ne) {
		return ne.Code == "Neo.TransientError.General.DatabaseUnavailable"
	}
	var pe *neo4j.ConnectivityError
	return errors.As(err, &pe)
}

func cmpDur(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

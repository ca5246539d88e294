// Package agent connects to a coordinator, asks for as many leases as it has free slots, runs one
// runner per lease and streams results back. Runs outlive connections: a run that ends while the
// coordinator is unreachable waits in the spool and is sent on the next session.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/sportsintel/enrich/agent/runner"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// Version is reported in Hello; set at build time with -ldflags.
var Version = "dev"

// Defaults of Config.
const (
	DefaultReconnectMin = 250 * time.Millisecond
	DefaultReconnectMax = 30 * time.Second
	DefaultDrainGrace   = 10 * time.Minute
	// DefaultUnhealthyPause is how long a misconfigured agent takes no work before it tries again.
	DefaultUnhealthyPause = 5 * time.Minute
	// DefaultRateLimitPause is the pause after a rate limit when the API did not say how long.
	DefaultRateLimitPause = 30 * time.Second
	// ackWait bounds how long a finished drain waits for the coordinator to acknowledge results.
	ackWait = 10 * time.Second
)

// Config of an agent. Coordinator, Types, Slots and Runner are required.
type Config struct {
	Coordinator string
	ID          string
	Types       []string
	Slots       int
	Runner      runner.Runner
	// SpoolDir keeps finished results on disk until acknowledged; empty keeps them in memory.
	SpoolDir string
	// DrainGrace bounds how long a drain waits for running leases before stopping them.
	DrainGrace time.Duration
	// UnhealthyPause: after a run fails because the host is misconfigured (bad API key, missing
	// binary), the agent takes no work for this long, then tries one lease again.
	UnhealthyPause time.Duration
	// RateLimitPause: after a rate-limited run, how long to ask for no work when the API gave
	// no retry-after.
	RateLimitPause time.Duration
	Labels         map[string]string
	ReconnectMin   time.Duration
	ReconnectMax   time.Duration
	DialOptions    []grpc.DialOption
	Logger         hclog.Logger
}

func (c *Config) withDefaults() error {
	if c.Coordinator == "" {
		return errors.New("no coordinator address")
	}
	if len(c.Types) == 0 {
		return errors.New("no instance types to serve")
	}
	if c.Slots < 1 {
		return fmt.Errorf("slots must be at least 1, got %d", c.Slots)
	}
	if c.Runner == nil {
		return errors.New("no runner")
	}
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = host
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = DefaultReconnectMax
	}
	if c.DrainGrace <= 0 {
		c.DrainGrace = DefaultDrainGrace
	}
	if c.UnhealthyPause <= 0 {
		c.UnhealthyPause = DefaultUnhealthyPause
	}
	if c.RateLimitPause <= 0 {
		c.RateLimitPause = DefaultRateLimitPause
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return nil
}

// Agent is one agent process's worker.
type Agent struct {
	cfg   Config
	log   hclog.Logger
	spool *spool
	host  string

	mu      sync.Mutex
	runs    map[int64]*run
	current *connection
	gen     uint64
	// draining is agent-wide and for good: set by Drain, it stops every request for work.
	draining  bool
	drainOnce sync.Once
	drained   chan struct{} // closed when a drain has finished; Run then returns

	// Health, from the classes of runner errors (guarded by mu). While pausedUntil is ahead no
	// credit is sent; limit is how many runs may go at once, halved on each rate limit and grown
	// back by one per successful run (additive increase, multiplicative decrease).
	healthProblem string
	pausedUntil   time.Time
	limit         int

	stats stats
}

// run is one lease being worked on.
type run struct {
	lease     *enrichv1.Lease
	cancel    context.CancelCauseFunc
	cancelled bool // by the coordinator: report a CancelAck, not a failure
}

// New validates cfg and opens the spool.
func New(cfg Config) (*Agent, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	sp, err := openSpool(cfg.SpoolDir)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	return &Agent{cfg: cfg, log: cfg.Logger, spool: sp, host: host, runs: map[int64]*run{}, drained: make(chan struct{}),
		limit: cfg.Slots}, nil
}

// Run serves until ctx ends or a drain finishes, reconnecting with jittered exponential backoff.
// On return every runner has been stopped.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-a.drained:
			cancel()
		case <-ctx.Done():
		}
	}()
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)),
	}, a.cfg.DialOptions...)
	// Checked once up front: a malformed address is a configuration error, not a reason to retry.
	probe, err := grpc.NewClient(a.cfg.Coordinator, opts...)
	if err != nil {
		return fmt.Errorf("coordinator address %q: %w", a.cfg.Coordinator, err)
	}
	probe.Close()
	a.log.Info("agent starting", "agent_id", a.cfg.ID, "coordinator", a.cfg.Coordinator, "types", a.cfg.Types,
		"slots", a.cfg.Slots, "spool", a.spool.String(), "spooled", a.spool.len())

	defer a.stopRuns()
	backoff := a.cfg.ReconnectMin
	for {
		started := time.Now()
		err := a.dialSession(ctx, opts)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errMovedOn) {
			// The coordinator asked the agent to go elsewhere: at once, and from the shortest wait.
			a.log.Info("reconnecting through a new connection", "reason", err)
			backoff = a.cfg.ReconnectMin
			continue
		}
		if time.Since(started) > time.Minute {
			backoff = a.cfg.ReconnectMin
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		a.log.Warn("disconnected from coordinator; reconnecting", "error", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, a.cfg.ReconnectMax)
	}
}

// dialSession runs one session on a connection of its own. A new connection for every session,
// not just a new stream: a balancer that routes by connection may send it to any coordinator,
// and a coordinator that times its request to move on (--max-connection-age) from the session
// is timing the connection.
func (a *Agent) dialSession(ctx context.Context, opts []grpc.DialOption) error {
	conn, err := grpc.NewClient(a.cfg.Coordinator, opts...)
	if err != nil {
		return err
	}
	defer conn.Close()
	return a.session(ctx, enrichv1.NewAgentServiceClient(conn))
}

// Drain stops asking for leases, lets running leases finish for up to the configured grace, then
// stops the rest (they are reported as retryable failures, so the coordinator retries them at
// once rather than after their TTL). When every result has been acknowledged, or ackWait after
// the last run ended, Run returns. Safe to call more than once and from any goroutine.
func (a *Agent) Drain(reason string) {
	a.drainOnce.Do(func() {
		a.mu.Lock()
		a.draining = true
		running := len(a.runs)
		a.mu.Unlock()
		a.log.Info("draining: no new leases; waiting for running leases", "reason", reason, "running", running,
			"grace", a.cfg.DrainGrace)
		go a.finishDrain()
	})
}

func (a *Agent) finishDrain() {
	defer close(a.drained)
	grace := time.NewTimer(a.cfg.DrainGrace)
	defer grace.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	stopped := false
	for {
		a.mu.Lock()
		running := len(a.runs)
		a.mu.Unlock()
		if running == 0 {
			break
		}
		select {
		case <-grace.C:
			a.log.Warn("drain grace period over; stopping running leases", "running", running)
			a.mu.Lock()
			for _, r := range a.runs {
				r.cancel(errors.New("agent draining: grace period over"))
			}
			a.mu.Unlock()
			stopped = true
		case <-tick.C:
		}
	}
	deadline := time.Now().Add(ackWait)
	for a.spool.len() > 0 && time.Now().Before(deadline) {
		<-tick.C
	}
	if n := a.spool.len(); n > 0 {
		a.log.Warn("drained with results not yet acknowledged; they stay in the spool", "results", n, "spool", a.spool.String())
	}
	a.log.Info("drained", "stopped_runs", stopped)
}

// noteFailure slows the agent down after a rate limit and pauses it when its host is
// misconfigured.
func (a *Agent) noteFailure(re *runner.Error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	switch {
	case re.Unhealthy():
		a.pausedUntil = now.Add(a.cfg.UnhealthyPause)
		a.healthProblem = "unhealthy: " + re.Message
		a.log.Error("runner reports this host cannot do the work; taking no leases for a while",
			"pause", a.cfg.UnhealthyPause, "error", re.Message)
	case re.SlowDown():
		wait := re.RetryAfter
		if wait <= 0 {
			wait = a.cfg.RateLimitPause
		}
		if until := now.Add(wait); until.After(a.pausedUntil) {
			a.pausedUntil = until
		}
		a.limit = max(1, a.limit/2)
		a.healthProblem = fmt.Sprintf("rate limited: at most %d runs at once", a.limit)
		a.log.Warn("rate limited by the model API; slowing down", "pause", wait, "runs_at_once", a.limit)
	}
}

func (a *Agent) noteSuccess() {
	a.mu.Lock()
	a.limit = min(a.cfg.Slots, a.limit+1)
	a.mu.Unlock()
}

func (a *Agent) stopRuns() {
	a.mu.Lock()
	for _, r := range a.runs {
		r.cancel(errors.New("agent shutting down"))
	}
	a.mu.Unlock()
	for {
		a.mu.Lock()
		n := len(a.runs)
		a.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// connection is one session's outbound side; only its writer goroutine sends on the stream.
type connection struct {
	gen       uint64
	out       chan *enrichv1.ConnectRequest
	topUp     chan struct{}
	done      chan struct{}
	requested int // credits sent and not yet used by a lease; guarded by Agent.mu
	// draining is per session: a coordinator that shuts down drains its agents, and they must ask
	// the next coordinator for work again.
	draining bool // guarded by Agent.mu
	// moveOn is closed when the coordinator asked the agent to go elsewhere (Drain without
	// exit) and the settle time has passed: the session ends and the agent dials afresh.
	moveOn     chan struct{}
	moveOnOnce sync.Once
}

// errMovedOn ends a session the coordinator asked the agent to leave.
var errMovedOn = errors.New("coordinator asked the agent to reconnect elsewhere")

// moveOnSettle is how long an agent told to move on keeps reading the old stream: a lease the
// coordinator granted just before it stopped granting is still received and run, not lost in a
// stream the agent already closed.
const moveOnSettle = time.Second

func (c *connection) send(msg *enrichv1.ConnectRequest) bool {
	select {
	case c.out <- msg:
		return true
	case <-c.done:
		return false
	}
}

func (c *connection) signalTopUp() {
	select {
	case c.topUp <- struct{}{}:
	default:
	}
}

func (a *Agent) session(ctx context.Context, client enrichv1.AgentServiceClient) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Connect(sctx)
	if err != nil {
		return err
	}
	// Held: what still runs, and what finished but is not acknowledged yet; both keep their
	// leases until the coordinator has their outcome.
	a.mu.Lock()
	held := make([]*enrichv1.LeaseRef, 0, len(a.runs))
	for _, r := range a.runs {
		held = append(held, r.lease.GetLease())
	}
	draining := a.draining
	a.mu.Unlock()
	held = append(held, a.spool.leases()...)
	if err := stream.Send(&enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Hello{Hello: &enrichv1.Hello{
		AgentId: a.cfg.ID, InstanceTypes: a.cfg.Types, Slots: int32(a.cfg.Slots), Version: Version, Hostname: a.host,
		Labels: a.cfg.Labels, HeldLeases: held, SpooledResults: int32(a.spool.len()), Draining: draining,
	}}}); err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	welcome := first.GetWelcome()
	if welcome == nil {
		return fmt.Errorf("coordinator answered Hello with %T, want Welcome", first.Msg)
	}
	interval := welcome.GetHeartbeatInterval().AsDuration()
	if interval <= 0 {
		interval = 5 * time.Second
	}
	a.log.Info("connected", "session_id", welcome.GetSessionId(), "heartbeat", interval, "lease_ttl", welcome.GetLeaseTtl().AsDuration())

	a.mu.Lock()
	a.gen++
	c := &connection{gen: a.gen, out: make(chan *enrichv1.ConnectRequest, 4096), topUp: make(chan struct{}, 1), done: make(chan struct{}),
		moveOn: make(chan struct{})}
	a.current = c
	a.mu.Unlock()
	a.stats.sessionStarted()
	defer func() {
		a.mu.Lock()
		if a.current == c {
			a.current = nil
		}
		a.mu.Unlock()
		close(c.done)
	}()

	// What finished while disconnected goes first.
	for _, msg := range a.spool.unsent(c.gen) {
		c.out <- msg
	}
	c.signalTopUp()

	writeErr := make(chan error, 1)
	go func() { writeErr <- a.writeLoop(sctx, stream, c, interval) }()
	readErr := make(chan error, 1)
	go func() { readErr <- a.readLoop(sctx, stream, c) }()
	readDone := false
	select {
	case err = <-readErr:
		readDone = true
	case err = <-writeErr:
	case <-c.moveOn:
		err = errMovedOn
	}
	cancel()
	if !readDone {
		// A lease read just before the end is started (a.runs) before the next session lists
		// what the agent holds; otherwise its coordinator would release a lease that runs.
		<-readErr
	}
	a.mu.Lock()
	movedOn := c.draining
	a.mu.Unlock()
	if movedOn {
		// A Drain without exit came first (a coordinator shutting down or moving its agents):
		// however the stream then ended, the agent goes elsewhere now.
		err = errMovedOn
	}
	if errors.Is(err, io.EOF) {
		err = errors.New("coordinator closed the stream")
	}
	return err
}

func (a *Agent) writeLoop(ctx context.Context, stream enrichv1.AgentService_ConnectClient, c *connection, interval time.Duration) error {
	hb := time.NewTicker(interval)
	defer hb.Stop()
	for {
		var msg *enrichv1.ConnectRequest
		select {
		case <-ctx.Done():
			return ctx.Err()
		case msg = <-c.out:
		case <-c.topUp:
			n := a.creditsToAsk(c)
			if n == 0 {
				continue
			}
			msg = &enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Credit{Credit: &enrichv1.Credit{Count: int32(n)}}}
		case <-hb.C:
			msg = a.heartbeatMsg()
			// A pause may have ended since the last run finished: ask again if so.
			c.signalTopUp()
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
}

// creditsToAsk returns how many more leases to ask for: free slots not already asked for.
func (a *Agent) creditsToAsk(c *connection) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c.draining || a.draining {
		return 0
	}
	now := time.Now()
	if now.Before(a.pausedUntil) {
		return 0
	}
	if a.healthProblem != "" {
		a.log.Info("pause over; asking for work again", "after", a.healthProblem)
		a.healthProblem = ""
	}
	n := a.limit - len(a.runs) - c.requested
	if n <= 0 {
		return 0
	}
	c.requested += n
	a.stats.creditsSent(n)
	return n
}

func (a *Agent) heartbeatMsg() *enrichv1.ConnectRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	hb := &enrichv1.Heartbeat{}
	if time.Now().Before(a.pausedUntil) {
		hb.HealthProblem = a.healthProblem
	}
	for _, r := range a.runs {
		hb.Leases = append(hb.Leases, &enrichv1.LeaseProgress{Lease: r.lease.GetLease(), Stage: "running"})
	}
	// A finished run keeps its lease alive until its result is acknowledged. Only live runs and
	// unacknowledged results are listed: a lease without either is one the coordinator must take back.
	for _, ref := range a.spool.leases() {
		if _, running := a.runs[ref.GetItemId()]; !running {
			hb.Leases = append(hb.Leases, &enrichv1.LeaseProgress{Lease: ref, Stage: "delivering"})
		}
	}
	return &enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Heartbeat{Heartbeat: hb}}
}

func (a *Agent) readLoop(ctx context.Context, stream enrichv1.AgentService_ConnectClient, c *connection) error {
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		switch m := msg.Msg.(type) {
		case *enrichv1.ConnectResponse_Lease:
			a.start(ctx, c, m.Lease)
		case *enrichv1.ConnectResponse_Ack:
			a.spool.ack(m.Ack.GetLease())
			if m.Ack.GetOutcome() != enrichv1.AckOutcome_ACK_OUTCOME_ACCEPTED {
				a.log.Warn("result not accepted", "item_id", m.Ack.GetLease().GetItemId(), "outcome", m.Ack.GetOutcome(), "message", m.Ack.GetMessage())
			}
		case *enrichv1.ConnectResponse_Cancel:
			a.cancelRun(c, m.Cancel)
		case *enrichv1.ConnectResponse_Drain:
			if m.Drain.GetExit() {
				a.Drain(m.Drain.GetReason())
				continue
			}
			a.mu.Lock()
			c.draining = true
			a.mu.Unlock()
			a.log.Info("coordinator draining: no new leases from it; reconnecting elsewhere", "reason", m.Drain.GetReason())
			// Runs go on; the next session lists them and their coordinator adopts them.
			time.AfterFunc(moveOnSettle, func() { c.moveOnOnce.Do(func() { close(c.moveOn) }) })
		case *enrichv1.ConnectResponse_Welcome:
			return errors.New("coordinator sent a second Welcome")
		}
	}
}

func (a *Agent) cancelRun(c *connection, cancel *enrichv1.Cancel) {
	ref := cancel.GetLease()
	a.mu.Lock()
	r, ok := a.runs[ref.GetItemId()]
	if ok && r.lease.GetLease().GetToken() == ref.GetToken() {
		r.cancelled = true
		r.cancel(errors.New(cancel.GetReason()))
	}
	a.mu.Unlock()
	if !ok {
		// Nothing runs for it: confirm at once so the coordinator forgets the lease.
		c.send(&enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_CancelAck{CancelAck: &enrichv1.CancelAck{Lease: ref}}})
	}
	a.log.Info("lease cancelled by coordinator", "item_id", ref.GetItemId(), "reason", cancel.GetReason())
}

// start runs a lease in its own goroutine, bounded by the lease's deadline.
func (a *Agent) start(ctx context.Context, c *connection, lease *enrichv1.Lease) {
	a.stats.leaseReceived()
	a.mu.Lock()
	c.requested = max(0, c.requested-1)
	itemID := lease.GetLease().GetItemId()
	if _, dup := a.runs[itemID]; dup {
		a.mu.Unlock()
		a.log.Warn("lease for an item already running; ignored", "item_id", itemID)
		return
	}
	// Runs are not tied to the session: they go on across reconnects and stop only when the agent
	// does, the coordinator cancels them, or their deadline passes.
	runCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	if dl := lease.GetDeadline(); dl != nil {
		var cancelDeadline context.CancelFunc
		runCtx, cancelDeadline = context.WithDeadlineCause(runCtx, dl.AsTime(), errors.New("the run passed its deadline (instance type timeout)"))
		prev := cancel
		cancel = func(cause error) { prev(cause); cancelDeadline() }
	}
	r := &run{lease: lease, cancel: cancel}
	a.runs[itemID] = r
	a.mu.Unlock()
	go a.execute(runCtx, r)
}

func (a *Agent) execute(ctx context.Context, r *run) {
	ref := r.lease.GetLease()
	log := a.log.With("item_id", ref.GetItemId(), "token", ref.GetToken(), "entity_id", r.lease.GetEntity().GetId())
	log.Debug("run started", "instance_type", r.lease.GetInstanceType(), "attempt", r.lease.GetAttempt())
	out, err := a.cfg.Runner.Run(ctx, r.lease)
	r.cancel(nil)

	a.mu.Lock()
	cancelled := r.cancelled
	a.mu.Unlock()

	var msg *enrichv1.ConnectRequest
	if err == nil {
		a.noteSuccess()
	}
	switch {
	case err == nil:
		// A result is paid work: send it even if the lease was cancelled meanwhile.
		msg = &enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Result{Result: &enrichv1.Result{
			Lease: ref, DossierJson: out.Dossier, Metrics: out.Metrics}}}
	case cancelled:
		msg = &enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_CancelAck{CancelAck: &enrichv1.CancelAck{Lease: ref}}}
	default:
		re := runner.AsError(err)
		log.Warn("run failed", "retryable", re.Retryable, "class", re.Kind().String(), "error", re.Message)
		if re.Unhealthy() {
			// The host, not the entity, is at fault: give the entity back for another agent
			// and stop taking work here instead of failing the batch one entity at a time.
			re.Retryable = true
			re.Message = "agent " + a.cfg.ID + " unhealthy: " + re.Message
		}
		a.noteFailure(re)
		metrics := re.Metrics
		if metrics == nil {
			metrics = &enrichv1.RunMetrics{}
		}
		msg = &enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Failure{Failure: &enrichv1.Failure{
			Lease: ref, Retryable: re.Retryable, Message: re.Message, StderrTail: re.StderrTail, Metrics: metrics}}}
	}
	if msg.GetCancelAck() == nil {
		if err := a.spool.put(msg); err != nil {
			log.Error("spool result; sending without a durable copy", "error", err)
		}
	}

	a.mu.Lock()
	delete(a.runs, ref.GetItemId())
	c := a.current
	a.mu.Unlock()
	a.stats.runEnded(r.lease, msg)
	if c == nil {
		return // sent from the spool on the next session
	}
	if msg.GetCancelAck() != nil {
		c.send(msg)
	} else {
		for _, m := range a.spool.unsent(c.gen) {
			c.send(m)
		}
	}
	c.signalTopUp()
}

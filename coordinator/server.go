package coordinator

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/sportsintel/enrich/coordinator/config"
	"github.com/sportsintel/enrich/coordinator/store"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// Version is reported to agents and in logs; set at build time with -ldflags.
var Version = "dev"

// MaxMessageBytes is the default bound of one gRPC message (a dossier or a prepared batch);
// limits.max_message_bytes changes it.
const MaxMessageBytes = config.DefaultMaxMessageBytes

// Server is one coordinator.
type Server struct {
	cfg *config.Config
	st  store.Store
	log hclog.Logger

	sessions *registry
	hub      *hub
	metrics  *metrics
	progress *progressCache
	reports  chan report
	wake     chan struct{}
	health   *health.Server
	registry *prometheus.Registry

	// advertised is this coordinator's address as shown in `enrichctl agents`.
	advertised string
	now        func() time.Time

	consolidating sync.Mutex
	graphRetries  graphRetries       // consolidation_retry.go
	sweep         consolidationSweep // consolidation.go
	outputDirs    map[string]bool    // handed out this process, so two batches in one second never share one
	outputDirsMu  sync.Mutex

	background sync.WaitGroup
	// connAge bounds how long one client connection lives (SetConnectionAge).
	connAge connectionAge
	// sec and admit decide who may connect (security.go, agent_admission.go).
	sec    Security
	admit  *admission
	grants grantIndex

	// runCtx lives as long as Run: work started on behalf of a request (consolidating a batch
	// it ended) must not die with the request.
	runCtx context.Context
}

// New builds a coordinator over an open store. reg receives the coordinator's metrics and is
// served on /metrics.
func New(cfg *config.Config, st store.Store, log hclog.Logger, reg *prometheus.Registry) *Server {
	s := &Server{
		cfg:        cfg,
		st:         st,
		log:        log,
		sessions:   newRegistry(),
		hub:        newHub(),
		metrics:    newMetrics(reg),
		progress:   &progressCache{entries: map[string]*progressEntry{}},
		reports:    make(chan report, 4096),
		wake:       make(chan struct{}, 1),
		health:     health.NewServer(),
		registry:   reg,
		advertised: cfg.Listen,
		now:        func() time.Time { return time.Now().UTC() },
		outputDirs: map[string]bool{},
		admit:      newAdmission(cfg.Limits),
	}
	if reg != nil {
		reg.MustRegister(newFleetCollector(s))
	}
	return s
}

// GRPCServer builds the gRPC server with every service registered.
func (s *Server) GRPCServer() *grpc.Server {
	gs := grpc.NewServer(append(s.securityOptions(),
		// Agents ping every 20 s at most; anything more frequent is abuse.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// MaxConnectionAge: behind a load balancer, long-lived agent streams rebalance (fleet.go).
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second,
			MaxConnectionAge: s.connAge.age, MaxConnectionAgeGrace: s.connAge.grace}),
	)...)
	enrichv1.RegisterAgentServiceServer(gs, &agentService{s: s})
	enrichv1.RegisterControlServiceServer(gs, &controlService{s: s})
	healthpb.RegisterHealthServer(gs, s.health)
	reflection.Register(gs)
	return gs
}

// Run serves gRPC on grpcLis and HTTP on httpLis (either may be nil) until ctx ends.
func (s *Server) Run(ctx context.Context, grpcLis, httpLis net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.runCtx = ctx
	if grpcLis != nil {
		s.advertised = grpcLis.Addr().String()
	}

	// Leases that expired while no coordinator was running are reaped before anything is granted.
	s.reap(ctx)
	s.resumeConsolidation(ctx)

	s.goBackground(func() { s.dispatchLoop(ctx) })
	s.goBackground(func() { s.commitLoop(ctx) })
	s.goBackground(func() { s.reapLoop(ctx) })
	s.goBackground(func() { s.fleetLoop(ctx) })
	s.goBackground(func() { newScheduler(s).loop(ctx) })

	errc := make(chan error, 2)
	var gs *grpc.Server
	if grpcLis != nil {
		gs = s.GRPCServer()
		go func() { errc <- gs.Serve(grpcLis) }()
	}
	var hs *http.Server
	if httpLis = s.httpListener(httpLis); httpLis != nil {
		hs = &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := hs.Serve(httpLis); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(enrichv1.AgentService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(enrichv1.ControlService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	s.log.Info("coordinator serving", "grpc", addrOf(grpcLis), "http", addrOf(httpLis), "version", Version)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		s.log.Error("listener failed", "error", err)
	}
	s.health.Shutdown()
	s.shutdown(gs, hs)
	cancel()
	s.background.Wait()
	return err
}

// shutdownFlush bounds how long a stopping coordinator waits for its agent streams' queues.
const shutdownFlush = time.Second

func (s *Server) shutdown(gs *grpc.Server, hs *http.Server) {
	// Agent streams never end by themselves: ask agents to move on, then end their streams.
	sessions := s.sessions.snapshot()
	for _, sess := range sessions {
		sess.stopGranting(&enrichv1.ConnectResponse{Msg: &enrichv1.ConnectResponse_Drain{Drain: &enrichv1.Drain{Reason: "coordinator shutting down"}}})
	}
	// Give each stream's writer a moment to send what is queued (leases granted just before,
	// then the Drain): a lease dropped with the stream would be released when its agent
	// reconnects without it, and cost its entity an attempt.
	for deadline := time.Now().Add(shutdownFlush); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if !slices.ContainsFunc(sessions, func(sess *session) bool { return len(sess.out) > 0 }) {
			break
		}
	}
	for _, sess := range sessions {
		sess.cancel()
	}
	if gs != nil {
		stopped := make(chan struct{})
		go func() { gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			gs.Stop()
		}
	}
	if hs != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	}
}

func (s *Server) goBackground(fn func()) {
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		fn()
	}()
}

func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// wakeDispatcher asks the dispatcher to look for work again; it never blocks.
func (s *Server) wakeDispatcher() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// retryDelay is the backoff before the attempt after attempt n: exponential (or constant) from
// base_delay, capped at max_delay, with equal jitter so a burst of failures does not retry in step.
func (s *Server) retryDelay(attempt int) time.Duration {
	rs := s.cfg.RetryStrategy
	base, maxDelay := rs.BaseDelay.D(), rs.MaxDelay.D()
	d := base
	if rs.Backoff != config.BackoffConstant {
		for i := 1; i < attempt && d < maxDelay; i++ {
			d *= 2
		}
	}
	d = min(d, maxDelay)
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

func newID(prefix string) string {
	var b [6]byte
	_, _ = crand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// instance returns the configuration of an instance type.
func (s *Server) instance(name string) (config.InstanceConfig, bool) {
	ic, ok := s.cfg.ResourceAllocation[name]
	return ic, ok
}

func (s *Server) maxConcurrent() map[string]int {
	out := map[string]int{}
	for name, ic := range s.cfg.ResourceAllocation {
		out[name] = ic.MaxConcurrent
	}
	return out
}

func (s *Server) timeouts() map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, ic := range s.cfg.ResourceAllocation {
		out[name] = ic.Timeout.D()
	}
	return out
}

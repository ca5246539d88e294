package coordinator

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/sportsintel/enrich/coordinator/auth"
	"github.com/sportsintel/enrich/coordinator/config"
	"github.com/sportsintel/enrich/coordinator/limit"
	"github.com/sportsintel/enrich/internal/tlsutil"
)

// Security is how the coordinator admits callers: TLS on both listeners and the guard that
// checks every RPC and HTTP request. The zero value serves plaintext without authentication,
// as on a developer's machine.
type Security struct {
	// TLS, when set, serves gRPC and HTTP over TLS (tlsutil.Reloader.Config reloads it).
	TLS *tls.Config
	// HTTPTLS is the HTTP listener's TLS (tlsutil.Reloader.HTTPConfig: client certificates are
	// never required there, so probes work); nil uses TLS.
	HTTPTLS *tls.Config
	// Guard checks tokens and roles; nil turns authentication off.
	Guard *auth.Guard
}

// SetSecurity must be called before Run.
func (s *Server) SetSecurity(sec Security) { s.sec = sec }

// admission holds the per-agent limits applied when a session opens.
type admission struct {
	hellos  *limit.Buckets
	streams *limit.Counter
}

func newAdmission(l config.LimitsConfig) *admission {
	return &admission{
		hellos:  limit.NewBuckets(float64(l.HelloPerMinute)/60, l.HelloBurst),
		streams: limit.NewCounter(l.MaxStreamsPerAgent),
	}
}

// securityOptions are the gRPC server options for transport credentials, interceptors and
// message size.
func (s *Server) securityOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.cfg.Limits.MaxMessageBytes),
		grpc.MaxSendMsgSize(s.cfg.Limits.MaxMessageBytes),
		// The guard runs first: nobody reaches a limit check, let alone a handler, unchecked.
		grpc.ChainUnaryInterceptor(s.sec.Guard.UnaryInterceptor(), s.limitsInterceptor()),
		grpc.ChainStreamInterceptor(s.sec.Guard.StreamInterceptor()),
	}
	if s.sec.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.sec.TLS)))
	}
	return opts
}

// httpListener wraps the HTTP listener in TLS when TLS is on.
func (s *Server) httpListener(l net.Listener) net.Listener {
	cfg := cmp.Or(s.sec.HTTPTLS, s.sec.TLS)
	if cfg == nil || l == nil {
		return l
	}
	return tls.NewListener(l, cfg)
}

// CheckExposure refuses plaintext on an address other hosts can reach unless the operator
// said --insecure, and returns the warnings to log at start-up.
func CheckExposure(cfg *config.Config, authOn bool) (warnings []string, err error) {
	for _, a := range []struct{ name, addr string }{{"listen", cfg.Listen}, {"http", cfg.HTTP}} {
		if tlsutil.IsLoopback(a.addr) {
			continue
		}
		if !cfg.TLS.Enabled() {
			if !cfg.TLS.Insecure {
				return nil, fmt.Errorf("refusing to serve %s %s without TLS: other hosts can reach it; set --tls-cert and --tls-key "+
					"(enrichctl certs init makes a development set), or pass --insecure if TLS ends in front of the coordinator", a.name, a.addr)
			}
			warnings = append(warnings, fmt.Sprintf("%s %s serves plaintext (--insecure): traffic and tokens can be read on the network", a.name, a.addr))
		}
		if !authOn {
			warnings = append(warnings, fmt.Sprintf("%s %s has no authentication: anyone who reaches it can launch batches and read dossiers; set --tokens", a.name, a.addr))
		}
	}
	return warnings, nil
}

// helloRetryHint rounds a wait for an error message.
func helloRetryHint(d time.Duration) time.Duration {
	return max(d.Round(100*time.Millisecond), 100*time.Millisecond)
}

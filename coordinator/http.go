package coordinator

import (
	"context"
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sportsintel/enrich/coordinator/web"
)

// httpHandler serves the probes, metrics and the read-only dashboard (everything else). The
// guard checks every request (auth.RouteAccess says which role each route needs).
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		// A draining coordinator is alive but must get no new streams: the balancer's health
		// check moves traffic away while its agents finish moving.
		if s.runCtx != nil && s.runCtx.Err() != nil {
			http.Error(w, "draining: shutting down", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.st.Ping(ctx); err != nil {
			http.Error(w, "store unreachable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	// Profiles are how an operator finds where a slow coordinator spends its time.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	// The dashboard reads through the same ControlService as enrichctl, so both always agree.
	mux.Handle("/", web.Handler(&controlService{s: s}))
	return s.sec.Guard.Middleware(mux)
}

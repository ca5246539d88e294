// Command enrich-coordinator runs the enrichment control plane: it leases entities to agents,
// stores their results and consolidates finished batches.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sportsintel/enrich/coordinator"
	"github.com/sportsintel/enrich/coordinator/config"
	"github.com/sportsintel/enrich/coordinator/store"
	"github.com/sportsintel/enrich/coordinator/store/postgres"
	"github.com/sportsintel/enrich/coordinator/store/sqlite"
)

// defaultGCPercent is the garbage collector's target when GOGC is not set. The coordinator's live
// heap is small (sessions, a few caches) and its garbage is per-message, so collecting at three
// times the live heap instead of twice costs a few megabytes and saved about a tenth of its CPU
// per entity under make bench's load.
const defaultGCPercent = 300

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "enrich-coordinator:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("enrich-coordinator", flag.ContinueOnError)
	configPath := fs.String("config", os.Getenv("ENRICH_CONFIG"), "YAML configuration file (env ENRICH_CONFIG)")
	listen := fs.String("listen", "", "gRPC listen address (default "+config.DefaultListen+")")
	httpAddr := fs.String("http", "", "HTTP address for /healthz, /readyz, /metrics (default "+config.DefaultHTTP+")")
	storeURL := fs.String("store", "", "store: sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DB (default "+config.DefaultStore+"; env ENRICH_STORE)")
	dossiers := fs.String("dossiers", "", "folder for consolidated batches (default "+config.DefaultDossiers+")")
	logLevel := fs.String("log-level", "", "trace, debug, info, warn or error")
	logFormat := fs.String("log-format", "", "text or json")
	tlsCert := fs.String("tls-cert", "", "PEM certificate served on the gRPC and HTTP listeners (env ENRICH_TLS_CERT)")
	tlsKey := fs.String("tls-key", "", "PEM private key of --tls-cert (env ENRICH_TLS_KEY)")
	clientCA := fs.String("client-ca", "", "PEM CA bundle that agents' client certificates must chain to (env ENRICH_CLIENT_CA)")
	clientAuth := fs.String("client-auth", "", "request (verify a client certificate if sent; default with --client-ca) or require (env ENRICH_CLIENT_AUTH)")
	insecureFlag := fs.Bool("insecure", false, "allow plaintext on a non-loopback address (env ENRICH_INSECURE)")
	tokensPath := fs.String("tokens", "", "bearer token file (role name sha256:hex lines, or YAML); turns authentication on (env ENRICH_TOKENS)")
	maxConnAge := fs.Duration("max-connection-age", 30*time.Minute,
		"end each client connection after this long (GOAWAY) so streams rebalance behind a load balancer; 0 disables")
	maxConnAgeGrace := fs.Duration("max-connection-age-grace", 30*time.Second,
		"how long streams may go on after GOAWAY before the connection closes; agents reconnect and keep their leases")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *version {
		fmt.Println(coordinator.Version)
		return nil
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	// Flags beat env and file: apply only the flags that were given.
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "listen":
			cfg.Listen = *listen
		case "http":
			cfg.HTTP = *httpAddr
		case "store":
			cfg.Store = *storeURL
		case "dossiers":
			cfg.Dossiers = *dossiers
		case "log-level":
			cfg.Log.Level = *logLevel
		case "log-format":
			cfg.Log.Format = *logFormat
		case "tls-cert":
			cfg.TLS.Cert = *tlsCert
		case "tls-key":
			cfg.TLS.Key = *tlsKey
		case "client-ca":
			cfg.TLS.ClientCA = *clientCA
		case "client-auth":
			cfg.TLS.ClientAuth = *clientAuth
		case "insecure":
			cfg.TLS.Insecure = *insecureFlag
		case "tokens":
			cfg.Auth.Tokens = *tokensPath
		}
	})
	if err := cfg.Validate(); err != nil {
		return err
	}

	log := hclog.New(&hclog.LoggerOptions{
		Name:       "coordinator",
		Level:      hclog.LevelFromString(cfg.Log.Level),
		JSONFormat: cfg.Log.Format == "json",
		Output:     os.Stderr,
	})

	sec, reload, err := security(cfg, log)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				reload()
			case <-ctx.Done():
				return
			}
		}
	}()

	st, err := openStore(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer st.Close()

	grpcLis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	httpLis, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTP, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv := coordinator.New(cfg, st, log, reg)
	srv.SetConnectionAge(*maxConnAge, *maxConnAgeGrace)
	srv.SetSecurity(sec)
	return srv.Run(ctx, grpcLis, httpLis)
}

func openStore(ctx context.Context, url string) (store.Store, error) {
	switch {
	case strings.HasPrefix(url, "sqlite:"):
		return sqlite.Open(ctx, strings.TrimPrefix(url, "sqlite:"))
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		// Several coordinators may share the database; migrations run once, under a lock.
		return postgres.Open(ctx, url)
	default:
		// Never echo the value: it may be a URL with a password in a wrong scheme.
		return nil, errors.New("store: use sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE")
	}
}

// Command enrich-agent runs enrichment work leased by a coordinator: one runner process per lease,
// up to --slots at once.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sportsintel/enrich/agent"
	"github.com/sportsintel/enrich/agent/runner"
	"github.com/sportsintel/enrich/internal/clientcreds"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "enrich-agent:", err)
		os.Exit(1)
	}
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

type labels map[string]string

func (l labels) String() string { return fmt.Sprint(map[string]string(l)) }
func (l labels) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("label %q: want KEY=VALUE", v)
	}
	l[k] = val
	return nil
}

func run(args []string) error {
	fs := flag.NewFlagSet("enrich-agent", flag.ContinueOnError)
	coordinator := fs.String("coordinator", envOr("ENRICH_COORDINATOR", "127.0.0.1:7400"), "coordinator gRPC address HOST:PORT (env ENRICH_COORDINATOR)")
	id := fs.String("id", envOr("ENRICH_AGENT_ID", ""), "agent id, unique in the fleet (default: host name; env ENRICH_AGENT_ID)")
	types := fs.String("types", envOr("ENRICH_TYPES", "entities,persons,leagues"), "instance types to serve, by name or alias (env ENRICH_TYPES)")
	slots := fs.Int("slots", 4, "runs at once")
	runnerKind := fs.String("runner", "offline", "runner: offline (built in, no network), exec (--exec command per lease) or claude (Claude Code, settings from --config)")
	configPath := fs.String("config", envOr("ENRICH_CONFIG", ""), "enrich.yaml with the claude runner's settings per instance type (env ENRICH_CONFIG)")
	execCmd := fs.String("exec", "", "command run with /bin/sh -c per lease (runner exec): prompt on stdin, dossier JSON on stdout")
	execGrace := fs.Duration("exec-grace", runner.DefaultGrace, "time between SIGTERM and SIGKILL when a run is cancelled")
	workDir := fs.String("workdir", "", "folder for runner scratch files (default: a temporary folder)")
	offlineDelay := fs.String("offline-delay", "0", "simulated work time of the offline runner: 2s, or a range 1s-3s")
	unhealthyPause := fs.Duration("unhealthy-pause", agent.DefaultUnhealthyPause, "after the runner reports this host misconfigured (bad API key, missing binary), take no leases for this long")
	drainGrace := fs.Duration("drain-grace", agent.DefaultDrainGrace, "on SIGTERM or an operator's drain, how long running leases may finish before they are stopped")
	spool := fs.String("spool", envOr("ENRICH_SPOOL", ""), "folder keeping finished results until the coordinator has them (default: memory only)")
	metricsAddr := fs.String("metrics-addr", envOr("ENRICH_METRICS_ADDR", ""), "serve Prometheus /metrics on HOST:PORT (default: off; env ENRICH_METRICS_ADDR)")
	logLevel := fs.String("log-level", envOr("ENRICH_LOG_LEVEL", "info"), "trace, debug, info, warn or error")
	logFormat := fs.String("log-format", envOr("ENRICH_LOG_FORMAT", "text"), "text or json")
	lbls := labels{}
	fs.Var(lbls, "label", "KEY=VALUE label shown in `enrichctl agents` (repeatable)")
	var sec clientcreds.Options
	fs.StringVar(&sec.CAFile, "ca", envOr("ENRICH_CA", ""), "PEM CA that signed the coordinator's certificate (env ENRICH_CA); implies TLS")
	fs.StringVar(&sec.CertFile, "cert", envOr("ENRICH_CERT", ""), "PEM client certificate for mutual TLS (env ENRICH_CERT)")
	fs.StringVar(&sec.KeyFile, "key", envOr("ENRICH_KEY", ""), "PEM key of --cert (env ENRICH_KEY)")
	fs.StringVar(&sec.ServerName, "server-name", envOr("ENRICH_SERVER_NAME", ""), "name to verify in the coordinator's certificate (default: host of --coordinator)")
	fs.BoolVar(&sec.Insecure, "insecure", envOr("ENRICH_INSECURE", "") == "true", "plaintext even to a non-loopback coordinator (env ENRICH_INSECURE=true)")
	// No env default for --token: flag defaults are printed by -help.
	fs.StringVar(&sec.Token, "token", "", "bearer token of role agent (env ENRICH_TOKEN; prefer --token-file)")
	fs.StringVar(&sec.TokenFile, "token-file", envOr("ENRICH_TOKEN_FILE", ""), "file holding the bearer token (env ENRICH_TOKEN_FILE)")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if sec.Token == "" && sec.TokenFile == "" {
		sec.Token = os.Getenv("ENRICH_TOKEN")
	}
	// Runner processes inherit the agent's environment; the token is the agent's, not theirs.
	_ = os.Unsetenv("ENRICH_TOKEN")
	if *version {
		fmt.Println(agent.Version)
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *logFormat != "text" && *logFormat != "json" {
		return fmt.Errorf("--log-format %q: want text or json", *logFormat)
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "agent", Level: hclog.LevelFromString(*logLevel), JSONFormat: *logFormat == "json", Output: os.Stderr})

	var r runner.Runner
	switch *runnerKind {
	case "offline":
		lo, hi, err := runner.ParseDelay(*offlineDelay)
		if err != nil {
			return fmt.Errorf("--offline-delay: %w", err)
		}
		r = &runner.Offline{MinDelay: lo, MaxDelay: hi}
	case "exec":
		if strings.TrimSpace(*execCmd) == "" {
			return fmt.Errorf("--runner exec needs --exec 'COMMAND ...'")
		}
		dir := *workDir
		if dir == "" {
			tmp, err := os.MkdirTemp("", "enrich-agent-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			dir = tmp
		} else if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		r = &runner.Exec{Command: *execCmd, WorkDir: dir, Grace: *execGrace}
	case "claude":
		c, cleanup, err := newClaudeRunner(*configPath, *workDir, *execGrace, log)
		if err != nil {
			return err
		}
		defer cleanup()
		r = c
	default:
		return fmt.Errorf("--runner %q: want offline, exec or claude", *runnerKind)
	}

	var typeList []string
	for _, t := range strings.Split(*types, ",") {
		if t = strings.TrimSpace(t); t != "" {
			typeList = append(typeList, t)
		}
	}
	sec.Addr = *coordinator
	dialOpts, err := clientcreds.DialOptions(sec)
	if err != nil {
		return err
	}
	a, err := agent.New(agent.Config{Coordinator: *coordinator, ID: *id, Types: typeList, Slots: *slots, Runner: r,
		SpoolDir: *spool, DrainGrace: *drainGrace, UnhealthyPause: *unhealthyPause, Labels: lbls, Logger: log,
		DialOptions: dialOpts})
	if err != nil {
		return err
	}
	// The first SIGTERM or SIGINT drains: no new leases, running ones finish (within
	// --drain-grace) and are delivered. A second one stops at once; what runs is retried elsewhere.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case sig := <-sigs:
			log.Info("signal received: draining; send it again to stop at once", "signal", sig.String(), "grace", *drainGrace)
			a.Drain("signal " + sig.String())
		case <-ctx.Done():
			return
		}
		select {
		case <-sigs:
			log.Warn("second signal: stopping now")
			stop()
		case <-ctx.Done():
		}
	}()
	if *metricsAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		if err := a.RegisterMetrics(reg); err != nil {
			return err
		}
		// A metrics listener that cannot start is a configuration error: fail before taking work.
		lis, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		log.Info("serving metrics", "addr", lis.Addr().String())
		go func() {
			if err := agent.ServeMetrics(ctx, lis, reg); err != nil {
				log.Error("metrics server stopped", "error", err)
			}
		}()
	}
	return a.Run(ctx)
}

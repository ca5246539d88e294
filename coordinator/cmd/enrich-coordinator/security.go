package main

import (
	"github.com/hashicorp/go-hclog"

	"github.com/sportsintel/enrich/coordinator"
	"github.com/sportsintel/enrich/coordinator/auth"
	"github.com/sportsintel/enrich/coordinator/config"
	"github.com/sportsintel/enrich/internal/tlsutil"
)

// security loads the TLS material and tokens, refuses an exposed plaintext listener, logs what
// is in force, and returns a function that reloads both (run on SIGHUP; file changes are also
// picked up by themselves).
func security(cfg *config.Config, log hclog.Logger) (coordinator.Security, func(), error) {
	var sec coordinator.Security
	var tokens *auth.Tokens
	var reloader *tlsutil.Reloader
	slog := log.Named("security")

	if cfg.Auth.Tokens != "" {
		t, err := auth.LoadTokens(cfg.Auth.Tokens)
		if err != nil {
			return sec, nil, err
		}
		t.OnReload = func(n int, err error) {
			if err != nil {
				slog.Error("tokens not reloaded; the previous set stays in force", "file", cfg.Auth.Tokens, "error", err)
				return
			}
			slog.Info("tokens reloaded", "file", cfg.Auth.Tokens, "tokens", n)
		}
		tokens = t
		sec.Guard = auth.NewGuard(t)
	}
	warnings, err := coordinator.CheckExposure(cfg, tokens != nil)
	if err != nil {
		return sec, nil, err
	}
	for _, w := range warnings {
		slog.Warn(w)
	}
	if cfg.TLS.Enabled() {
		r, err := tlsutil.NewReloader(tlsutil.ServerOptions{CertFile: cfg.TLS.Cert, KeyFile: cfg.TLS.Key,
			ClientCAFile: cfg.TLS.ClientCA, ClientAuth: cfg.TLS.ClientAuth})
		if err != nil {
			return sec, nil, err
		}
		r.OnReload = func(err error) {
			if err != nil {
				slog.Error("TLS certificate not reloaded; the previous one stays in use", "cert", cfg.TLS.Cert, "error", err)
				return
			}
			slog.Info("TLS certificate reloaded", "cert", cfg.TLS.Cert, "not_after", r.Certificate().Leaf.NotAfter)
		}
		reloader = r
		sec.TLS, sec.HTTPTLS = r.Config(), r.HTTPConfig()
	}
	clientAuth := cfg.TLS.ClientAuth
	if clientAuth == "" && cfg.TLS.ClientCA != "" {
		clientAuth = config.ClientAuthRequest
	}
	tokenCount := 0
	if tokens != nil {
		tokenCount = tokens.Len()
	}
	slog.Info("security", "tls", cfg.TLS.Enabled(), "client_auth", clientAuth, "auth", tokens != nil, "tokens", tokenCount)

	reload := func() {
		slog.Info("SIGHUP: reloading TLS certificate and tokens")
		if reloader != nil {
			_ = reloader.Reload()
		}
		if tokens != nil {
			_ = tokens.Reload()
		}
	}
	return sec, reload, nil
}

package ctl

import (
	"cmp"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"

	"github.com/sportsintel/enrich/internal/clientcreds"
)

// maxRecvMsgSize admits large answers (a batch's failed items with their
// stderr tails, big dossiers) beyond gRPC's 4 MiB default.
const maxRecvMsgSize = 16 << 20

// securityConfig holds the transport and token flags. No flag takes its default from the
// environment: cobra prints defaults in --help, and a token must never be printed, so the
// ENRICH_* variables are read only when dialling.
type securityConfig struct {
	CA         string
	Cert       string
	Key        string
	ServerName string
	Insecure   bool
	Token      string
	TokenFile  string
}

func (c *cli) securityFlags(f *pflag.FlagSet) {
	s := &c.global.Security
	f.StringVar(&s.CA, "ca", "", "PEM CA that signed the coordinator's certificate (env ENRICH_CA); implies TLS")
	f.StringVar(&s.Cert, "cert", "", "PEM client certificate for mutual TLS (env ENRICH_CERT)")
	f.StringVar(&s.Key, "key", "", "PEM key of --cert (env ENRICH_KEY)")
	f.StringVar(&s.ServerName, "server-name", "", "name to verify in the coordinator's certificate (default: the host of --addr; env ENRICH_SERVER_NAME)")
	f.BoolVar(&s.Insecure, "insecure", false, "plaintext even to a non-loopback address (env ENRICH_INSECURE)")
	f.StringVar(&s.Token, "token", "", "bearer token (env ENRICH_TOKEN; prefer --token-file, command lines are visible to other users)")
	f.StringVar(&s.TokenFile, "token-file", "", "file holding the bearer token (env ENRICH_TOKEN_FILE)")
}

// clientOptions merges flags with their ENRICH_* variables (flags win).
func (g globalConfig) clientOptions() (clientcreds.Options, error) {
	s := g.Security
	o := clientcreds.Options{
		Addr:       g.Addr,
		CAFile:     cmp.Or(s.CA, os.Getenv("ENRICH_CA")),
		CertFile:   cmp.Or(s.Cert, os.Getenv("ENRICH_CERT")),
		KeyFile:    cmp.Or(s.Key, os.Getenv("ENRICH_KEY")),
		ServerName: cmp.Or(s.ServerName, os.Getenv("ENRICH_SERVER_NAME")),
		Insecure:   s.Insecure,
		Token:      s.Token,
		TokenFile:  s.TokenFile,
	}
	if !o.Insecure {
		if v := os.Getenv("ENRICH_INSECURE"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return o, usageErrorf("ENRICH_INSECURE=%q: want true or false", v)
			}
			o.Insecure = b
		}
	}
	if o.Token == "" && o.TokenFile == "" {
		o.Token, o.TokenFile = os.Getenv("ENRICH_TOKEN"), os.Getenv("ENRICH_TOKEN_FILE")
	}
	return o, nil
}

// dial is the one place that connects to the coordinator.
func dial(cfg globalConfig) (*grpc.ClientConn, error) {
	o, err := cfg.clientOptions()
	if err != nil {
		return nil, err
	}
	opts, err := clientcreds.DialOptions(o)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	opts = append(opts, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize)))
	conn, err := grpc.NewClient(cfg.Addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.Addr, err)
	}
	return conn, nil
}

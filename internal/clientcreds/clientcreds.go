// Package clientcreds turns a client's security flags (--ca, --cert, --key, --insecure,
// --token, --token-file) into gRPC dial options, the same way for agents and enrichctl.
//
// The transport follows the address: TLS whenever a CA or client certificate is given or the
// coordinator is not on loopback; plaintext on loopback (local use as before) or with
// --insecure. A token is never sent in plaintext to another host unless --insecure says so.
package clientcreds

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sportsintel/enrich/internal/tlsutil"
)

// Options are a client's security settings.
type Options struct {
	// Addr is the coordinator's HOST:PORT; it decides the default transport.
	Addr       string
	CAFile     string
	CertFile   string
	KeyFile    string
	ServerName string
	// Insecure forces plaintext, even to another host.
	Insecure bool
	// Token is the bearer token; TokenFile a file holding it (one line). At most one.
	Token     string
	TokenFile string
}

// UsesTLS reports whether the connection will be TLS.
func (o Options) UsesTLS() bool {
	if o.Insecure {
		return false
	}
	return o.CAFile != "" || o.CertFile != "" || !tlsutil.IsLoopback(o.Addr)
}

// DialOptions returns the transport credentials and, with a token, per-call credentials.
func DialOptions(o Options) ([]grpc.DialOption, error) {
	if o.Insecure && (o.CAFile != "" || o.CertFile != "" || o.KeyFile != "") {
		return nil, errors.New("--insecure cannot be combined with --ca, --cert or --key")
	}
	token, err := o.token()
	if err != nil {
		return nil, err
	}
	var opts []grpc.DialOption
	if o.UsesTLS() {
		cfg, err := tlsutil.Client(tlsutil.ClientOptions{CAFile: o.CAFile, CertFile: o.CertFile, KeyFile: o.KeyFile, ServerName: o.ServerName})
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if token != "" {
		if !o.UsesTLS() && !o.Insecure && !tlsutil.IsLoopback(o.Addr) {
			// Unreachable today (non-loopback without --insecure always uses TLS); kept so a
			// change of the defaults can never start leaking tokens.
			return nil, fmt.Errorf("refusing to send a token in plaintext to %s", o.Addr)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(Bearer(token)))
	}
	return opts, nil
}

func (o Options) token() (string, error) {
	if o.Token != "" && o.TokenFile != "" {
		return "", errors.New("give a token or a token file, not both")
	}
	if o.TokenFile == "" {
		return strings.TrimSpace(o.Token), nil
	}
	b, err := os.ReadFile(o.TokenFile)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", o.TokenFile)
	}
	return tok, nil
}

// Bearer returns per-call credentials sending "authorization: Bearer <token>". They do not
// demand TLS from gRPC: DialOptions decides when plaintext is acceptable (loopback, or
// --insecure), so local use with tokens works.
func Bearer(token string) credentials.PerRPCCredentials { return bearer(token) }

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// String never prints the token, should the credentials end up in a log line.
func (bearer) String() string { return "bearer(redacted)" }

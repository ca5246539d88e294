package ctl

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

func TestCertsInitAndTLSDialWithToken(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "pki")
	var stdout, stderr bytes.Buffer
	code := Main([]string{"certs", "init", dir, "--host", "coord.example"}, &stdout, &stderr)
	require.Equal(t, ExitOK, code, stderr.String())
	for _, f := range []string{"ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "agent.pem", "agent-key.pem"} {
		require.FileExists(t, filepath.Join(dir, f))
	}
	require.Contains(t, stdout.String(), "--tls-cert "+filepath.Join(dir, "server.pem"))
	code = Main([]string{"certs", "init", dir}, &stdout, &stderr)
	require.Equal(t, ExitFailure, code, "existing files are not replaced without --force")

	// A TLS coordinator (the generated server certificate) that records the token it gets.
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"))
	require.NoError(t, err)
	var mu sync.Mutex
	var seen []string
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			mu.Lock()
			seen = append(seen, md.Get("authorization")...)
			mu.Unlock()
			return h(ctx, req)
		}))
	enrichv1.RegisterControlServiceServer(gs, &fakeControlServer{ListBatchesFunc: func(context.Context, *enrichv1.ListBatchesRequest) (*enrichv1.ListBatchesResponse, error) {
		return &enrichv1.ListBatchesResponse{}, nil
	}})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	addr := lis.Addr().String()

	const secret = "s3cret-token-value-0123456789"
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(secret+"\n"), 0o600))
	stdout.Reset()
	stderr.Reset()
	code = Main([]string{"--addr", addr, "--ca", filepath.Join(dir, "ca.pem"), "--token-file", tokenFile, "batches"}, &stdout, &stderr)
	require.Equal(t, ExitOK, code, stderr.String())
	mu.Lock()
	require.Equal(t, []string{"Bearer " + secret}, seen)
	mu.Unlock()

	// Plaintext to a TLS server fails, and the error does not carry the token.
	stderr.Reset()
	code = Main([]string{"--addr", addr, "--token", secret, "--timeout", "2s", "batches"}, &stdout, &stderr)
	require.NotEqual(t, ExitOK, code)
	require.NotContains(t, stderr.String(), secret)
	// A CA that did not sign the server's certificate is refused.
	other := filepath.Join(t.TempDir(), "other")
	require.Equal(t, ExitOK, Main([]string{"certs", "init", other}, &stdout, &stderr))
	stderr.Reset()
	code = Main([]string{"--addr", addr, "--ca", filepath.Join(other, "ca.pem"), "--timeout", "2s", "batches"}, &stdout, &stderr)
	require.NotEqual(t, ExitOK, code)
	require.Contains(t, stderr.String(), "certificate")

	code = Main([]string{"--addr", addr, "--insecure", "--ca", filepath.Join(dir, "ca.pem"), "batches"}, &stdout, &stderr)
	require.Equal(t, ExitUsage, code)
}

func TestHelpNeverShowsTheToken(t *testing.T) {
	t.Setenv("ENRICH_TOKEN", "env-token-must-not-appear-0123")
	var stdout, stderr bytes.Buffer
	Main([]string{"--help"}, &stdout, &stderr)
	require.Contains(t, stdout.String(), "--token-file")
	require.NotContains(t, stdout.String()+stderr.String(), "env-token-must-not-appear")
}

func TestTokensHashAndNew(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	// sha256("abcdefghijklmnop"), computed independently.
	code := Main([]string{"tokens", "hash", "abcdefghijklmnop"}, &stdout, &stderr)
	require.Equal(t, ExitOK, code, stderr.String())
	require.Equal(t, hashToken("abcdefghijklmnop")+"\n", stdout.String())
	require.Equal(t, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hashToken("abc"))

	require.Equal(t, ExitUsage, Main([]string{"tokens", "hash", "short"}, &stdout, &stderr), "short secrets are refused")

	stdout.Reset()
	code = Main([]string{"tokens", "new", "--role", "agent", "--name", "agent-7"}, &stdout, &stderr)
	require.Equal(t, ExitOK, code, stderr.String())
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	require.Len(t, lines, 2)
	secret := strings.TrimSpace(strings.TrimPrefix(lines[0], "secret:"))
	require.True(t, strings.HasPrefix(secret, "enr_") && len(secret) > 40, secret)
	require.Equal(t, "line:   agent agent-7 "+hashToken(secret), lines[1])
	require.Equal(t, ExitUsage, Main([]string{"tokens", "new", "--role", "root", "--name", "x"}, &stdout, &stderr))
	require.Equal(t, ExitUsage, Main([]string{"tokens", "new", "--role", "admin", "--name", "../x"}, &stdout, &stderr))
}

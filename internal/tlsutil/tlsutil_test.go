package tlsutil

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// serve accepts TLS connections on loopback and answers "ok" to each after the handshake.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				_, _ = c.Write([]byte("ok"))
			}()
		}
	}()
	return lis.Addr().String()
}

// roundTrip dials addr with cfg and returns the server's answer or the error.
func roundTrip(addr string, cfg *tls.Config) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

func devPKI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	_, err := GenerateDev(dir, DevOptions{Hosts: []string{"coordinator.internal", "10.1.2.3"}})
	require.NoError(t, err)
	return dir
}

func clientCfg(t *testing.T, dir string, withCert bool) *tls.Config {
	t.Helper()
	o := ClientOptions{CAFile: filepath.Join(dir, CAFile)}
	if withCert {
		o.CertFile, o.KeyFile = filepath.Join(dir, AgentFile), filepath.Join(dir, AgentKeyFile)
	}
	cfg, err := Client(o)
	require.NoError(t, err)
	return cfg
}

func TestGenerateDevCertificates(t *testing.T) {
	t.Parallel()
	dir := devPKI(t)
	r, err := NewReloader(ServerOptions{CertFile: filepath.Join(dir, ServerFile), KeyFile: filepath.Join(dir, ServerKeyFile)})
	require.NoError(t, err)
	leaf := r.Certificate().Leaf
	require.NotNil(t, leaf)
	require.ElementsMatch(t, []string{"localhost", "coordinator.internal"}, leaf.DNSNames)
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	require.ElementsMatch(t, []string{"127.0.0.1", "::1", "10.1.2.3"}, ips)
	for _, key := range []string{CAKeyFile, ServerKeyFile, AgentKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, key))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), key)
	}
	_, err = GenerateDev(dir, DevOptions{})
	require.ErrorContains(t, err, "exists")
}

func TestServerAndMutualTLS(t *testing.T) {
	t.Parallel()
	dir := devPKI(t)
	opts := ServerOptions{CertFile: filepath.Join(dir, ServerFile), KeyFile: filepath.Join(dir, ServerKeyFile),
		ClientCAFile: filepath.Join(dir, CAFile)}

	t.Run("request", func(t *testing.T) {
		t.Parallel()
		r, err := NewReloader(opts) // a client CA alone means "request"
		require.NoError(t, err)
		addr := serve(t, r.Config())
		got, err := roundTrip(addr, clientCfg(t, dir, false))
		require.NoError(t, err)
		require.Equal(t, "ok", got)
		got, err = roundTrip(addr, clientCfg(t, dir, true))
		require.NoError(t, err)
		require.Equal(t, "ok", got)
	})
	t.Run("require", func(t *testing.T) {
		t.Parallel()
		o := opts
		o.ClientAuth = ClientAuthRequire
		r, err := NewReloader(o)
		require.NoError(t, err)
		addr := serve(t, r.Config())
		_, err = roundTrip(addr, clientCfg(t, dir, false))
		require.Error(t, err, "a client without a certificate must be refused")
		got, err := roundTrip(addr, clientCfg(t, dir, true))
		require.NoError(t, err)
		require.Equal(t, "ok", got)
		// The HTTP listener's configuration never requires one (probes, browsers).
		got, err = roundTrip(serve(t, r.HTTPConfig()), clientCfg(t, dir, false))
		require.NoError(t, err)
		require.Equal(t, "ok", got)
	})
	t.Run("untrusted client certificate", func(t *testing.T) {
		t.Parallel()
		o := opts
		o.ClientAuth = ClientAuthRequire
		r, err := NewReloader(o)
		require.NoError(t, err)
		addr := serve(t, r.Config())
		other := devPKI(t) // a different CA signed this agent certificate
		cfg, err := Client(ClientOptions{CAFile: filepath.Join(dir, CAFile),
			CertFile: filepath.Join(other, AgentFile), KeyFile: filepath.Join(other, AgentKeyFile)})
		require.NoError(t, err)
		_, err = roundTrip(addr, cfg)
		require.Error(t, err)
	})
	t.Run("client does not trust an unknown server", func(t *testing.T) {
		t.Parallel()
		r, err := NewReloader(ServerOptions{CertFile: opts.CertFile, KeyFile: opts.KeyFile})
		require.NoError(t, err)
		addr := serve(t, r.Config())
		_, err = roundTrip(addr, clientCfg(t, devPKI(t), false))
		require.ErrorContains(t, err, "certificate")
	})
}

func TestReload(t *testing.T) {
	t.Parallel()
	dir := devPKI(t)
	cert, key := filepath.Join(dir, ServerFile), filepath.Join(dir, ServerKeyFile)
	r, err := NewReloader(ServerOptions{CertFile: cert, KeyFile: key})
	require.NoError(t, err)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	r.now = func() time.Time { return time.Unix(0, clock.Load()) }
	var reloads atomic.Int32
	r.OnReload = func(err error) {
		if err == nil {
			reloads.Add(1)
		}
	}
	addr := serve(t, r.Config())
	oldCA := clientCfg(t, dir, false)
	_, err = roundTrip(addr, oldCA)
	require.NoError(t, err)

	// Rotate to a certificate from a new CA; until the next check the old one is served.
	next := devPKI(t)
	replace := func(src, dst string) {
		b, err := os.ReadFile(src)
		require.NoError(t, err)
		require.NoError(t, writeFileAtomic(dst, b, 0o600))
	}
	replace(filepath.Join(next, ServerFile), cert)
	replace(filepath.Join(next, ServerKeyFile), key)
	_, err = roundTrip(addr, oldCA)
	require.NoError(t, err, "checks are throttled to CheckInterval")

	clock.Add(int64(CheckInterval))
	_, err = roundTrip(addr, clientCfg(t, next, false))
	require.NoError(t, err, "the changed files are picked up without a restart")
	_, err = roundTrip(addr, oldCA)
	require.Error(t, err)
	require.Equal(t, int32(1), reloads.Load())

	// A broken key keeps the working certificate in service and reports the error.
	require.NoError(t, os.WriteFile(key, []byte("not a key"), 0o600))
	require.Error(t, r.Reload())
	_, err = roundTrip(addr, clientCfg(t, next, false))
	require.NoError(t, err)
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	_, err := NewReloader(ServerOptions{CertFile: "x"})
	require.ErrorContains(t, err, "both a certificate and a key")
	_, err = NewReloader(ServerOptions{CertFile: "x", KeyFile: "y", ClientAuth: "require"})
	require.ErrorContains(t, err, "needs a client CA")
	_, err = NewReloader(ServerOptions{CertFile: "x", KeyFile: "y", ClientAuth: "always"})
	require.ErrorContains(t, err, "want request or require")
	_, err = Client(ClientOptions{CertFile: "x"})
	require.ErrorContains(t, err, "both --cert and --key")
}

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:7400": true, "localhost:1": true, "[::1]:7400": true, "127.8.9.1:80": true,
		":7400": false, "0.0.0.0:7400": false, "[::]:1": false, "10.0.0.1:7400": false, "example.com:1": false,
	} {
		require.Equal(t, want, IsLoopback(addr), addr)
	}
}

package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// CheckInterval bounds how often a handshake looks at the files' modification times.
const CheckInterval = 2 * time.Second

// ClientAuth values.
const (
	ClientAuthNone    = ""
	ClientAuthRequest = "request" // verify a client certificate when one is sent
	ClientAuthRequire = "require" // refuse connections without a valid client certificate
)

// ServerOptions names the coordinator's TLS files.
type ServerOptions struct {
	CertFile string
	KeyFile  string
	// ClientCAFile, when set, is the CA bundle client certificates are verified against.
	ClientCAFile string
	// ClientAuth is ClientAuthRequest or ClientAuthRequire; with a ClientCAFile it defaults
	// to ClientAuthRequest.
	ClientAuth string
}

func (o ServerOptions) validate() error {
	if o.CertFile == "" || o.KeyFile == "" {
		return errors.New("tls: both a certificate and a key file are needed")
	}
	switch o.ClientAuth {
	case ClientAuthNone, ClientAuthRequest, ClientAuthRequire:
	default:
		return fmt.Errorf("tls: client auth %q: want request or require", o.ClientAuth)
	}
	if o.ClientAuth != ClientAuthNone && o.ClientCAFile == "" {
		return fmt.Errorf("tls: client auth %q needs a client CA file", o.ClientAuth)
	}
	return nil
}

// fileStamp is what tells a changed file from an unchanged one without reading it.
type fileStamp struct {
	size    int64
	modTime time.Time
}

func stamp(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime()}
}

// loaded is one consistent generation of the server's TLS material.
type loaded struct {
	cert    *tls.Certificate
	clients *x509.CertPool
	stamps  []fileStamp
}

// Reloader serves the current certificate and client CA pool, reloading them on change.
type Reloader struct {
	opts ServerOptions
	// OnReload, if set, is told of every reload attempt after the first load (err nil on
	// success) so the caller can log it.
	OnReload func(err error)
	now      func() time.Time

	mu        sync.Mutex
	cur       *loaded
	lastCheck time.Time
}

// NewReloader loads the files once; an error here is a start-up error.
func NewReloader(opts ServerOptions) (*Reloader, error) {
	if opts.ClientCAFile != "" && opts.ClientAuth == ClientAuthNone {
		opts.ClientAuth = ClientAuthRequest
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	r := &Reloader{opts: opts, now: time.Now}
	cur, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cur, r.lastCheck = cur, r.now()
	return r, nil
}

func (r *Reloader) files() []string {
	files := []string{r.opts.CertFile, r.opts.KeyFile}
	if r.opts.ClientCAFile != "" {
		files = append(files, r.opts.ClientCAFile)
	}
	return files
}

func (r *Reloader) load() (*loaded, error) {
	// Stamps are taken before reading so a write racing the read is seen as a change next time.
	var stamps []fileStamp
	for _, f := range r.files() {
		stamps = append(stamps, stamp(f))
	}
	cert, err := tls.LoadX509KeyPair(r.opts.CertFile, r.opts.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load certificate %s and key %s: %w", r.opts.CertFile, r.opts.KeyFile, err)
	}
	out := &loaded{cert: &cert, stamps: stamps}
	if r.opts.ClientCAFile != "" {
		pool, err := LoadCertPool(r.opts.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client CA: %w", err)
		}
		out.clients = pool
	}
	return out, nil
}

// Reload re-reads the files now. On error the previous certificate stays in use.
func (r *Reloader) Reload() error {
	next, err := r.load()
	r.mu.Lock()
	if err == nil {
		r.cur = next
	}
	r.lastCheck = r.now()
	r.mu.Unlock()
	if r.OnReload != nil {
		r.OnReload(err)
	}
	return err
}

// current returns the material in use, reloading first when a file changed since the last
// load and the last check is older than CheckInterval.
func (r *Reloader) current() *loaded {
	r.mu.Lock()
	cur := r.cur
	due := r.now().Sub(r.lastCheck) >= CheckInterval
	if due {
		r.lastCheck = r.now()
	}
	r.mu.Unlock()
	if due && r.changed(cur) {
		_ = r.Reload()
		r.mu.Lock()
		cur = r.cur
		r.mu.Unlock()
	}
	return cur
}

func (r *Reloader) changed(cur *loaded) bool {
	for i, f := range r.files() {
		if stamp(f) != cur.stamps[i] {
			return true
		}
	}
	return false
}

// Certificate returns the certificate in use (for tests and start-up logs).
func (r *Reloader) Certificate() *tls.Certificate { return r.current().cert }

// Config returns the server TLS configuration; every handshake asks the Reloader for the
// certificate and client CA pool in use at that moment.
func (r *Reloader) Config() *tls.Config { return r.config(r.opts.ClientAuth == ClientAuthRequire) }

// HTTPConfig is Config that verifies a client certificate when one is sent but never requires
// one: load balancers' probes and browsers reach /healthz and the dashboard without a client
// certificate, and tokens guard the rest.
func (r *Reloader) HTTPConfig() *tls.Config { return r.config(false) }

func (r *Reloader) config(requireClientCert bool) *tls.Config {
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cur := r.current()
		cfg := &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{*cur.cert},
			// gRPC needs h2; the HTTP listener serves both.
			NextProtos: []string{"h2", "http/1.1"},
		}
		if cur.clients != nil {
			cfg.ClientCAs = cur.clients
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
			if requireClientCert {
				cfg.ClientAuth = tls.RequireAndVerifyClientCert
			}
		}
		return cfg, nil
	}
	return base
}

// LoadCertPool reads a PEM bundle of CA certificates.
func LoadCertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate found", path)
	}
	return pool, nil
}

package tlsutil

import (
	"crypto/tls"
	"fmt"
)

// ClientOptions names what a client (agent or enrichctl) uses to verify the coordinator and,
// for mutual TLS, to prove who it is.
type ClientOptions struct {
	// CAFile verifies the coordinator; empty uses the system roots.
	CAFile string
	// CertFile and KeyFile are the client certificate, both or neither.
	CertFile string
	KeyFile  string
	// ServerName overrides the name checked against the coordinator's certificate (default:
	// the host of the dialled address).
	ServerName string
}

// Client returns the client TLS configuration.
func Client(o ClientOptions) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	if o.CAFile != "" {
		pool, err := LoadCertPool(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: CA: %w", err)
		}
		cfg.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, fmt.Errorf("tls: a client certificate needs both --cert and --key")
	}
	if o.CertFile != "" {
		// Read on every handshake so a rotated agent certificate is used on the next reconnect.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("tls: load client certificate: %w", err)
			}
			return &c, nil
		}
		if _, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile); err != nil {
			return nil, fmt.Errorf("tls: load client certificate %s and key %s: %w", o.CertFile, o.KeyFile, err)
		}
	}
	return cfg, nil
}

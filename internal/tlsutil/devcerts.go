package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// File names written by GenerateDev.
const (
	CAFile        = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	ServerFile    = "server.pem"
	ServerKeyFile = "server-key.pem"
	AgentFile     = "agent.pem"
	AgentKeyFile  = "agent-key.pem"
)

// DevOptions describes a development PKI.
type DevOptions struct {
	// Hosts are extra DNS names or IP addresses of the server certificate; localhost and
	// 127.0.0.1 (and ::1) are always included.
	Hosts []string
	// AgentName is the client certificate's common name (default "agent").
	AgentName string
	// Validity of the certificates (default one year).
	Validity time.Duration
	// Force overwrites existing files.
	Force bool
}

// GenerateDev writes a development CA, a server certificate and an agent client certificate
// (ECDSA P-256) into dir and returns the paths written. Keys are written 0600.
func GenerateDev(dir string, o DevOptions) ([]string, error) {
	if o.AgentName == "" {
		o.AgentName = "agent"
	}
	if o.Validity <= 0 {
		o.Validity = 365 * 24 * time.Hour
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	names := []string{CAFile, CAKeyFile, ServerFile, ServerKeyFile, AgentFile, AgentKeyFile}
	if !o.Force {
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
				return nil, fmt.Errorf("%s exists; pass --force to replace the whole set", filepath.Join(dir, n))
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		}
	}
	now := time.Now().Add(-5 * time.Minute) // tolerate small clock skew between hosts
	notAfter := now.Add(o.Validity)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "enrich development CA", Organization: []string{"enrich"}},
		NotBefore:             now,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}

	srvTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "enrich-coordinator", Organization: []string{"enrich"}},
		NotBefore:    now,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range o.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			srvTmpl.IPAddresses = append(srvTmpl.IPAddresses, ip)
		} else if h != "" {
			srvTmpl.DNSNames = append(srvTmpl.DNSNames, h)
		}
	}
	agentTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: o.AgentName, Organization: []string{"enrich"}},
		NotBefore:    now,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}

	files := map[string][]byte{CAFile: pemBlock("CERTIFICATE", caDER)}
	if files[CAKeyFile], err = keyPEM(caKey); err != nil {
		return nil, err
	}
	for _, leaf := range []struct {
		tmpl          *x509.Certificate
		cert, keyFile string
	}{{srvTmpl, ServerFile, ServerKeyFile}, {agentTmpl, AgentFile, AgentKeyFile}} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.CreateCertificate(rand.Reader, leaf.tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", leaf.cert, err)
		}
		files[leaf.cert] = pemBlock("CERTIFICATE", der)
		if files[leaf.keyFile], err = keyPEM(key); err != nil {
			return nil, err
		}
	}
	var written []string
	for _, n := range names {
		mode := fs.FileMode(0o644)
		if n == CAKeyFile || n == ServerKeyFile || n == AgentKeyFile {
			mode = 0o600
		}
		path := filepath.Join(dir, n)
		if err := writeFileAtomic(path, files[n], mode); err != nil {
			return written, err
		}
		written = append(written, path)
	}
	return written, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func keyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pemBlock("PRIVATE KEY", der), nil
}

// writeFileAtomic writes through a temporary file and a rename, so a coordinator reloading
// on file change never reads half a key.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

package config

import (
	"errors"
	"fmt"
	"strconv"
)

// Defaults of the limits block. MaxMessageBytes bounds one gRPC message (a prepared batch or a
// dossier); the entity limits are checked per entity at prepare time.
const (
	DefaultMaxMessageBytes     = 16 << 20
	DefaultMaxEntitiesPerBatch = 100_000
	DefaultMaxAttributes       = 256
	DefaultMaxAttributeBytes   = 64 << 10
	DefaultMaxDossierBytes     = 4 << 20
	DefaultMaxStreamsPerAgent  = 4
	DefaultHelloPerMinute      = 60
	DefaultHelloBurst          = 10
)

// Hard ceilings: a configuration above these is refused, since the coordinator's own input
// checks (and the store's single-transaction prepare) assume them.
const (
	ceilingMessageBytes     = 256 << 20
	ceilingEntitiesPerBatch = 100_000
	ceilingAttributes       = 256
	ceilingAttributeBytes   = 64 << 10
)

// Values of TLSConfig.ClientAuth.
const (
	ClientAuthRequest = "request"
	ClientAuthRequire = "require"
)

// TLSConfig turns on TLS for the gRPC and HTTP listeners.
type TLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ClientCA verifies agents' client certificates (mutual TLS).
	ClientCA string `yaml:"client_ca"`
	// ClientAuth is request (verify a certificate if one is sent) or require; with a
	// client_ca it defaults to request.
	ClientAuth string `yaml:"client_auth"`
	// Insecure allows plaintext on a non-loopback address, for deployments where TLS ends
	// at a proxy on the same host or network namespace.
	Insecure bool `yaml:"insecure"`
}

// Enabled reports whether the listeners serve TLS.
func (t TLSConfig) Enabled() bool { return t.Cert != "" || t.Key != "" }

// AuthConfig turns on bearer tokens.
type AuthConfig struct {
	// Tokens is a file of "role name sha256:hex" lines or YAML; empty turns auth off.
	Tokens string `yaml:"tokens"`
}

// LimitsConfig bounds what callers may send. Each violation is refused with a message naming
// the key.
type LimitsConfig struct {
	MaxMessageBytes     int `yaml:"max_message_bytes"`
	MaxEntitiesPerBatch int `yaml:"max_entities_per_batch"`
	MaxAttributes       int `yaml:"max_attributes"`
	MaxAttributeBytes   int `yaml:"max_attribute_bytes"`
	MaxDossierBytes     int `yaml:"max_dossier_bytes"`
	// MaxStreamsPerAgent bounds open Connect streams per agent id; a reconnect needs two
	// for a moment, until the old stream is closed.
	MaxStreamsPerAgent int `yaml:"max_streams_per_agent"`
	// HelloPerMinute and HelloBurst are the token bucket of new sessions per agent id.
	HelloPerMinute int `yaml:"hello_per_minute"`
	HelloBurst     int `yaml:"hello_burst"`
}

func defaultLimits() LimitsConfig {
	return LimitsConfig{
		MaxMessageBytes:     DefaultMaxMessageBytes,
		MaxEntitiesPerBatch: DefaultMaxEntitiesPerBatch,
		MaxAttributes:       DefaultMaxAttributes,
		MaxAttributeBytes:   DefaultMaxAttributeBytes,
		MaxDossierBytes:     DefaultMaxDossierBytes,
		MaxStreamsPerAgent:  DefaultMaxStreamsPerAgent,
		HelloPerMinute:      DefaultHelloPerMinute,
		HelloBurst:          DefaultHelloBurst,
	}
}

func (c *Config) validateSecurity() []error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	t := c.TLS
	if (t.Cert == "") != (t.Key == "") {
		add("tls", "cert and key must be set together")
	}
	switch t.ClientAuth {
	case "", ClientAuthRequest, ClientAuthRequire:
	default:
		add("tls.client_auth", "%q is not one of %s, %s", t.ClientAuth, ClientAuthRequest, ClientAuthRequire)
	}
	if t.ClientAuth != "" && t.ClientCA == "" {
		add("tls.client_auth", "needs tls.client_ca")
	}
	if t.ClientCA != "" && !t.Enabled() {
		add("tls.client_ca", "needs tls.cert and tls.key")
	}

	l := c.Limits
	for _, b := range []struct {
		path      string
		v, lo, hi int
	}{
		{"limits.max_message_bytes", l.MaxMessageBytes, 1 << 10, ceilingMessageBytes},
		{"limits.max_entities_per_batch", l.MaxEntitiesPerBatch, 1, ceilingEntitiesPerBatch},
		{"limits.max_attributes", l.MaxAttributes, 0, ceilingAttributes},
		{"limits.max_attribute_bytes", l.MaxAttributeBytes, 1, ceilingAttributeBytes},
		{"limits.max_dossier_bytes", l.MaxDossierBytes, 1 << 10, ceilingMessageBytes},
		{"limits.max_streams_per_agent", l.MaxStreamsPerAgent, 1, 1 << 16},
		{"limits.hello_per_minute", l.HelloPerMinute, 1, 1 << 20},
		{"limits.hello_burst", l.HelloBurst, 1, 1 << 20},
	} {
		if b.v < b.lo || b.v > b.hi {
			add(b.path, "%d is outside %d..%d", b.v, b.lo, b.hi)
		}
	}
	if l.MaxDossierBytes > l.MaxMessageBytes {
		add("limits.max_dossier_bytes", "%d must not exceed limits.max_message_bytes (%d)", l.MaxDossierBytes, l.MaxMessageBytes)
	}
	return errs
}

// applySecurityEnv reads ENRICH_TLS_*, ENRICH_TOKENS and ENRICH_INSECURE.
func (c *Config) applySecurityEnv(lookupEnv func(string) (string, bool)) error {
	for _, s := range []struct {
		name string
		dst  *string
	}{
		{"ENRICH_TLS_CERT", &c.TLS.Cert},
		{"ENRICH_TLS_KEY", &c.TLS.Key},
		{"ENRICH_CLIENT_CA", &c.TLS.ClientCA},
		{"ENRICH_CLIENT_AUTH", &c.TLS.ClientAuth},
		{"ENRICH_TOKENS", &c.Auth.Tokens},
	} {
		if v, ok := lookupEnv(s.name); ok && v != "" {
			*s.dst = v
		}
	}
	if v, ok := lookupEnv("ENRICH_INSECURE"); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("ENRICH_INSECURE: want true or false")
		}
		c.TLS.Insecure = b
	}
	return nil
}

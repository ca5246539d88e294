package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSecurityKeys(t *testing.T) {
	t.Parallel()
	c := Default()
	require.NoError(t, c.decodeYAML("enrich.yaml", []byte(`
tls:
  cert: /etc/enrich/server.pem
  key: /etc/enrich/server-key.pem
  client_ca: /etc/enrich/ca.pem
  client_auth: require
auth:
  tokens: /etc/enrich/tokens
limits:
  max_message_bytes: 8388608
  max_dossier_bytes: 1048576
  max_entities_per_batch: 500
  max_attributes: 10
  max_attribute_bytes: 1000
  max_streams_per_agent: 2
  hello_per_minute: 6
  hello_burst: 2
`)))
	require.NoError(t, c.Validate())
	require.Equal(t, TLSConfig{Cert: "/etc/enrich/server.pem", Key: "/etc/enrich/server-key.pem",
		ClientCA: "/etc/enrich/ca.pem", ClientAuth: "require"}, c.TLS)
	require.Equal(t, "/etc/enrich/tokens", c.Auth.Tokens)
	require.Equal(t, LimitsConfig{MaxMessageBytes: 8 << 20, MaxDossierBytes: 1 << 20, MaxEntitiesPerBatch: 500,
		MaxAttributes: 10, MaxAttributeBytes: 1000, MaxStreamsPerAgent: 2, HelloPerMinute: 6, HelloBurst: 2}, c.Limits)
}

func TestSecurityDefaultsKeepLocalUseOpen(t *testing.T) {
	t.Parallel()
	c := Default()
	require.False(t, c.TLS.Enabled())
	require.Empty(t, c.Auth.Tokens)
	require.Equal(t, defaultLimits(), c.Limits)
}

func TestSecurityValidation(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"cert without key":     {func(c *Config) { c.TLS.Cert = "c" }, "tls: cert and key must be set together"},
		"unknown client auth":  {func(c *Config) { c.TLS.ClientAuth = "always"; c.TLS.ClientCA = "ca" }, `tls.client_auth: "always" is not one of request, require`},
		"client auth no CA":    {func(c *Config) { c.TLS.Cert, c.TLS.Key, c.TLS.ClientAuth = "c", "k", "require" }, "tls.client_auth: needs tls.client_ca"},
		"client CA no TLS":     {func(c *Config) { c.TLS.ClientCA = "ca" }, "tls.client_ca: needs tls.cert and tls.key"},
		"message too large":    {func(c *Config) { c.Limits.MaxMessageBytes = 1 << 30 }, "limits.max_message_bytes: 1073741824 is outside"},
		"dossier over message": {func(c *Config) { c.Limits.MaxMessageBytes, c.Limits.MaxDossierBytes = 1<<20, 2<<20 }, "limits.max_dossier_bytes: 2097152 must not exceed limits.max_message_bytes"},
		"zero streams":         {func(c *Config) { c.Limits.MaxStreamsPerAgent = 0 }, "limits.max_streams_per_agent: 0 is outside"},
		"entities over cap":    {func(c *Config) { c.Limits.MaxEntitiesPerBatch = 100_001 }, "limits.max_entities_per_batch: 100001 is outside"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			tc.edit(c)
			require.ErrorContains(t, c.Validate(), tc.want)
		})
	}
}

func TestSecurityEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{"ENRICH_TLS_CERT": "c.pem", "ENRICH_TLS_KEY": "k.pem", "ENRICH_CLIENT_CA": "ca.pem",
		"ENRICH_CLIENT_AUTH": "require", "ENRICH_TOKENS": "tokens.txt", "ENRICH_INSECURE": "true"}
	c, err := LoadWith("", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.NoError(t, err)
	require.Equal(t, TLSConfig{Cert: "c.pem", Key: "k.pem", ClientCA: "ca.pem", ClientAuth: "require", Insecure: true}, c.TLS)
	require.Equal(t, "tokens.txt", c.Auth.Tokens)

	env = map[string]string{"ENRICH_INSECURE": "maybe"}
	_, err = LoadWith("", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.ErrorContains(t, err, "ENRICH_INSECURE")
}

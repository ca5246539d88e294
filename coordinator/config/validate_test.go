package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(c *Config)
		want   string
	}{
		{"listen", func(c *Config) { c.Listen = "localhost" }, `listen: invalid address "localhost" (want host:port)`},
		{"http empty", func(c *Config) { c.HTTP = "" }, "http: must not be empty (want host:port)"},
		{"store scheme", func(c *Config) { c.Store = "mysql://root:secret@db" }, `store: unsupported store "mysql"`},
		{"store sqlite file", func(c *Config) { c.Store = "sqlite:" }, `store: "sqlite:" needs a file name`},
		{"dossiers", func(c *Config) { c.Dossiers = "" }, "dossiers: must not be empty"},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, `log.level: "verbose" is not one of trace, debug, info, warn, error`},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, `log.format: "xml" is not one of text, json`},
		{"ttl", func(c *Config) { c.Lease.TTL = 0 }, "lease.ttl: must be more than 0"},
		{"heartbeat", func(c *Config) { c.Lease.HeartbeatInterval = Duration(15 * time.Second) }, "lease.heartbeat_interval: 15s must be less than half of lease.ttl (30s)"},
		{"capacity", func(c *Config) { setInstance(c, "entities", func(ic *InstanceConfig) { ic.BatchCapacity = 0 }) }, "resource_allocation.entities.batch_capacity: must be more than 0, got 0"},
		{"max concurrent", func(c *Config) { setInstance(c, "persons", func(ic *InstanceConfig) { ic.MaxConcurrent = -1 }) }, "resource_allocation.persons.max_concurrent: must be 0 (no cap) or more, got -1"},
		{"timeout", func(c *Config) { setInstance(c, "leagues", func(ic *InstanceConfig) { ic.Timeout = 0 }) }, "resource_allocation.leagues.timeout: must be more than 0"},
		{"memory", func(c *Config) { setInstance(c, "leagues", func(ic *InstanceConfig) { ic.MemoryLimit = "2 gigs" }) }, `resource_allocation.leagues.memory_limit: invalid size "2 gigs": unknown unit "gigs"`},
		{"rate", func(c *Config) { setInstance(c, "leagues", func(ic *InstanceConfig) { ic.RateLimit = "10/fortnight" }) }, `resource_allocation.leagues.rate_limit: invalid rate "10/fortnight": unknown period "fortnight"`},
		{"alias", func(c *Config) { setInstance(c, "persons", func(ic *InstanceConfig) { ic.Alias = "1" }) }, `resource_allocation.persons.alias: "1" is already the alias of entities`},
		{"entity type twice", func(c *Config) {
			setInstance(c, "leagues", func(ic *InstanceConfig) { ic.EntityTypes = append(ic.EntityTypes, "club") })
		}, `resource_allocation.leagues.entity_types[3]: "club" is already mapped to entities`},
		{"no entity types", func(c *Config) { setInstance(c, "leagues", func(ic *InstanceConfig) { ic.EntityTypes = nil }) }, "resource_allocation.leagues.entity_types: must list at least one entity type"},
		{"schema path", func(c *Config) { setInstance(c, "leagues", func(ic *InstanceConfig) { ic.Schema = "../etc/passwd" }) }, `resource_allocation.leagues.schema: "../etc/passwd" is not a schema name`},
		{"instance name", func(c *Config) {
			c.ResourceAllocation["Bad/Name"] = c.ResourceAllocation["leagues"]
			delete(c.ResourceAllocation, "leagues")
		}, "resource_allocation.Bad/Name: instance type name must be"},
		{"no instances", func(c *Config) { c.ResourceAllocation = nil }, "resource_allocation: at least one instance type is needed"},
		{"retries", func(c *Config) { n := -1; c.RetryStrategy.MaxRetries = &n }, "retry_strategy.max_retries: must be 0 or more, got -1"},
		{"backoff", func(c *Config) { c.RetryStrategy.Backoff = "linear" }, `retry_strategy.backoff: "linear" is not one of exponential, constant`},
		{"base delay", func(c *Config) { c.RetryStrategy.BaseDelay = 0 }, "retry_strategy.base_delay: must be more than 0"},
		{"max delay", func(c *Config) { c.RetryStrategy.MaxDelay = Duration(time.Second) }, "retry_strategy.max_delay: 1s must not be less than retry_strategy.base_delay (5s)"},
		{"failure handling", func(c *Config) { c.RetryStrategy.FailureHandling = "abort" }, `retry_strategy.failure_handling: "abort" is not one of continue_with_remaining, stop_batch`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			tt.modify(c)
			err := c.Validate()
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestValidateDoesNotEchoStoreSecrets(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Store = "mysql://root:hunter2@db"
	require.NotContains(t, c.Validate().Error(), "hunter2")
}

func TestValidateAcceptsPostgres(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Store = "postgres://enrich:pw@db:5432/enrich?sslmode=require"
	require.NoError(t, c.Validate())
}

func setInstance(c *Config, name string, f func(*InstanceConfig)) {
	ic := c.ResourceAllocation[name]
	ic.EntityTypes = append([]string(nil), ic.EntityTypes...)
	f(&ic)
	c.ResourceAllocation[name] = ic
}

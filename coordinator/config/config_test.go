package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// writeConfig writes body to enrich.yaml in a fresh directory, so the file
// name in error messages is the one operators see.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "enrich.yaml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

func noEnv(string) (string, bool) { return "", false }

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// decodeErr decodes body as a file named enrich.yaml onto the defaults and
// returns the error text, so messages can be compared exactly.
func decodeErr(t *testing.T, body string) string {
	t.Helper()
	err := Default().decodeYAML("enrich.yaml", []byte(body))
	require.Error(t, err)
	return err.Error()
}

func TestDefaultIsValid(t *testing.T) {
	t.Parallel()
	c := Default()
	require.NoError(t, c.Validate())
	require.Equal(t, "127.0.0.1:7400", c.Listen)
	require.Equal(t, "sqlite:enrich.db", c.Store)
	require.Equal(t, 30*time.Second, c.Lease.TTL.D())
	require.True(t, c.Consolidation.AutoEnabled())
	require.Equal(t, 3, c.RetryStrategy.Retries())
	require.Equal(t, []string{"entities", "persons", "leagues"}, c.InstanceNames())

	persons := c.ResourceAllocation["persons"]
	require.Equal(t, "2", persons.Alias)
	require.Equal(t, 25, persons.BatchCapacity)
	require.Equal(t, 20*time.Minute, persons.Timeout.D())
	require.Equal(t, "poi_dossier", persons.Schema)
	n, err := persons.MemoryLimitBytes()
	require.NoError(t, err)
	require.Equal(t, int64(3_000_000_000), n)
}

func TestDefaultReturnsIndependentValues(t *testing.T) {
	t.Parallel()
	a := Default()
	*a.RetryStrategy.MaxRetries = 9
	a.ResourceAllocation["entities"].EntityTypes[0] = "Changed"
	b := Default()
	require.Equal(t, 3, b.RetryStrategy.Retries())
	require.Equal(t, "Club", b.ResourceAllocation["entities"].EntityTypes[0])
}

func TestLoadWithoutFileUsesDefaults(t *testing.T) {
	t.Parallel()
	c, err := LoadWith("", noEnv)
	require.NoError(t, err)
	require.Equal(t, Default(), c)
}

func TestLoadEmptyFileUsesDefaults(t *testing.T) {
	t.Parallel()
	c, err := LoadWith(writeConfig(t, "# nothing here yet\n"), noEnv)
	require.NoError(t, err)
	require.Equal(t, Default(), c)
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := LoadWith(filepath.Join(t.TempDir(), "nope.yaml"), noEnv)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestLoadMergesOntoBuiltins(t *testing.T) {
	t.Parallel()
	c, err := LoadWith(writeConfig(t, `
listen: 0.0.0.0:9000
lease:
  ttl: 1m
consolidation:
  auto: false
resource_allocation:
  entities:
    batch_capacity: 10
    rate_limit: 10/m
  instance_2:
    max_concurrent: 4
  venues:
    alias: "4"
    entity_types: [Stadium]
    schema: venue_dossier
    prompt: venues
retry_strategy:
  max_retries: 0
`), noEnv)
	require.NoError(t, err)

	require.Equal(t, "0.0.0.0:9000", c.Listen)
	require.Equal(t, DefaultHTTP, c.HTTP)
	require.Equal(t, time.Minute, c.Lease.TTL.D())
	require.Equal(t, DefaultHeartbeatInterval, c.Lease.HeartbeatInterval.D())
	require.False(t, c.Consolidation.AutoEnabled())
	require.Equal(t, 0, c.RetryStrategy.Retries(), "an explicit 0 must survive the merge")
	require.Equal(t, BackoffExponential, c.RetryStrategy.Backoff)

	entities := c.ResourceAllocation["entities"]
	require.Equal(t, 10, entities.BatchCapacity)
	require.Equal(t, 15*time.Minute, entities.Timeout.D(), "fields not named keep the default")
	require.Equal(t, []string{"Club", "Organization", "Venue", "Partner"}, entities.EntityTypes)
	require.InDelta(t, 10.0/60, entities.RatePerSecond(), 1e-9)

	persons := c.ResourceAllocation["persons"]
	require.Equal(t, 4, persons.MaxConcurrent)
	require.Equal(t, 25, persons.BatchCapacity)
	require.NotContains(t, c.ResourceAllocation, "instance_2")

	venues := c.ResourceAllocation["venues"]
	require.Equal(t, DefaultBatchCapacity, venues.BatchCapacity)
	require.Equal(t, DefaultInstanceTimeout, venues.Timeout.D())
	require.Equal(t, []string{"entities", "persons", "leagues", "venues"}, c.InstanceNames())
	name, ok := c.InstanceForEntityType("Stadium")
	require.True(t, ok)
	require.Equal(t, "venues", name)
}

func TestEntityTypesReplaceDefaultList(t *testing.T) {
	t.Parallel()
	c, err := LoadWith(writeConfig(t, `
resource_allocation:
  leagues:
    entity_types: [League]
`), noEnv)
	require.NoError(t, err)
	require.Equal(t, []string{"League"}, c.ResourceAllocation["leagues"].EntityTypes)
	_, ok := c.InstanceForEntityType("Competition")
	require.False(t, ok)
}

func TestSeedRetryBlockLoads(t *testing.T) {
	t.Parallel()
	c, err := LoadWith(writeConfig(t, `
retry_strategy:
  max_retries: 3
  backoff_strategy: "exponential"
  failure_handling: "continue_with_remaining"
`), noEnv)
	require.NoError(t, err)
	require.Equal(t, 3, c.RetryStrategy.Retries())
	require.Equal(t, BackoffExponential, c.RetryStrategy.Backoff)
	require.Equal(t, FailureContinueWithRemaining, c.RetryStrategy.FailureHandling)

	c, err = LoadWith(writeConfig(t, "retry_strategy: {max_retries: 2, backoff_strategy: constant, failure_handling: stop_batch}\n"), noEnv)
	require.NoError(t, err)
	require.Equal(t, 2, c.RetryStrategy.Retries())
	require.Equal(t, BackoffConstant, c.RetryStrategy.Backoff)
	require.Equal(t, FailureStopBatch, c.RetryStrategy.FailureHandling)
}

func TestUnknownKeyNamesPathAndLine(t *testing.T) {
	t.Parallel()
	msg := decodeErr(t, `listen: 127.0.0.1:7400
resource_allocation:
  entities:
    batch_capacity: 40

    timeout: 10m
    max_concurent: 5
`)
	require.Equal(t, "enrich.yaml:7: resource_allocation.entities.max_concurent: unknown key "+
		"(known: alias, batch_capacity, budget_usd, claude, entity_types, max_concurrent, memory_limit, prompt, rate_limit, schema, timeout)", msg)

	require.Equal(t, "enrich.yaml:2: lease.ttls: unknown key (known: heartbeat_interval, ttl)",
		decodeErr(t, "lease:\n  ttls: 5s\n"))
	require.Contains(t, decodeErr(t, "graph: {}\n"), "enrich.yaml:1: graph: unknown key (known: auth, consolidation, dossiers, http, lease, limits, listen, log, neo4j, ")
}

func TestUnknownKeyViaLoadNamesFile(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "retry_strategy:\n  retries: 3\n")
	_, err := LoadWith(path, noEnv)
	require.ErrorContains(t, err, path+":2: retry_strategy.retries: unknown key")
}

func TestInvalidValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, want string
	}{
		{
			name: "duration with words",
			body: "log:\n  level: info\nlease:\n  ttl: 30s\nretry_strategy:\n  max_retries: 3\n\n\n  base_delay: 5 seconds\n",
			want: `enrich.yaml:9: retry_strategy.base_delay: invalid duration "5 seconds"`,
		},
		{
			name: "duration without unit",
			body: "lease:\n  ttl: 30\n",
			want: `enrich.yaml:2: lease.ttl: invalid duration 30: want a string with a unit, e.g. "30s" or "15m"`,
		},
		{
			name: "integer",
			body: "resource_allocation:\n  persons:\n    batch_capacity: lots\n",
			want: `enrich.yaml:3: resource_allocation.persons.batch_capacity: invalid integer "lots"`,
		},
		{
			name: "quoted integer",
			body: "retry_strategy:\n  max_retries: \"3\"\n",
			want: `enrich.yaml:2: retry_strategy.max_retries: invalid integer "3"`,
		},
		{
			name: "boolean",
			body: "consolidation:\n  auto: sometimes\n",
			want: `enrich.yaml:2: consolidation.auto: invalid boolean "sometimes" (want true or false)`,
		},
		{
			name: "mapping expected",
			body: "lease: 30s\n",
			want: `enrich.yaml:1: lease: expected a mapping, got a single value`,
		},
		{
			name: "list expected",
			body: "resource_allocation:\n  entities:\n    entity_types: Club\n",
			want: `enrich.yaml:3: resource_allocation.entities.entity_types: expected a list, got a single value`,
		},
		{
			name: "list item",
			body: "resource_allocation:\n  entities:\n    entity_types:\n      - Club\n      - [Venue]\n",
			want: `enrich.yaml:5: resource_allocation.entities.entity_types[1]: expected a single value, got a list`,
		},
		{
			name: "top level not a mapping",
			body: "- listen\n",
			want: `enrich.yaml:1: expected a mapping, got a list`,
		},
		{
			name: "new instance type missing fields",
			body: "resource_allocation:\n  venues:\n    entity_types: [Stadium]\n",
			want: `enrich.yaml:2: resource_allocation.venues: new instance type must set schema, prompt`,
		},
		{
			name: "seed key and built-in name both set",
			body: "resource_allocation:\n  entities: {batch_capacity: 5}\n  instance_1: {batch_capacity: 6}\n",
			want: `enrich.yaml:3: resource_allocation.instance_1: duplicate key (first set by "entities" at line 2)`,
		},
		{
			name: "backoff and its alias both set",
			body: "retry_strategy:\n  backoff: constant\n  backoff_strategy: exponential\n",
			want: `enrich.yaml:3: retry_strategy.backoff_strategy: duplicate key (first set by "backoff" at line 2)`,
		},
		{
			name: "yaml syntax",
			body: "lease:\n  ttl: [\n",
			want: `enrich.yaml: yaml: line 2:`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Contains(t, decodeErr(t, tt.body), tt.want)
		})
	}
}

func TestAllDecodeProblemsReported(t *testing.T) {
	t.Parallel()
	msg := decodeErr(t, "listen: [a]\nlease:\n  ttl: soon\nbogus: 1\n")
	require.Equal(t, strings.Join([]string{
		"enrich.yaml:1: listen: expected a single value, got a list",
		`enrich.yaml:3: lease.ttl: invalid duration "soon"`,
		"enrich.yaml:4: bogus: unknown key (known: auth, consolidation, dossiers, http, lease, limits, listen, log, neo4j, resource_allocation, retry_strategy, store, tls)",
	}, "\n"), msg)
}

func TestFailedDecodeKeepsDefault(t *testing.T) {
	t.Parallel()
	c := Default()
	require.Error(t, c.decodeYAML("enrich.yaml", []byte("retry_strategy:\n  max_retries: x\n")))
	require.Equal(t, 3, c.RetryStrategy.Retries())
}

func TestYAMLAnchorsAreFollowed(t *testing.T) {
	t.Parallel()
	c, err := LoadWith(writeConfig(t, `
resource_allocation:
  entities: &small
    batch_capacity: 5
  persons: *small
`), noEnv)
	require.NoError(t, err)
	require.Equal(t, 5, c.ResourceAllocation["entities"].BatchCapacity)
	require.Equal(t, 5, c.ResourceAllocation["persons"].BatchCapacity)
}

func TestEnvOverridesFile(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "listen: 127.0.0.1:1000\nstore: sqlite:file.db\nlease:\n  ttl: 1m\n")
	c, err := LoadWith(path, envMap(map[string]string{
		"ENRICH_LISTEN":             "127.0.0.1:2000",
		"ENRICH_HTTP":               "127.0.0.1:2001",
		"ENRICH_STORE":              "postgres://enrich@db/enrich",
		"ENRICH_DOSSIERS":           "out",
		"ENRICH_LOG_LEVEL":          "DEBUG",
		"ENRICH_LOG_FORMAT":         "json",
		"ENRICH_LEASE_TTL":          "2m",
		"ENRICH_HEARTBEAT_INTERVAL": "10s",
		"ENRICH_UNRELATED":          "x",
	}))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:2000", c.Listen)
	require.Equal(t, "127.0.0.1:2001", c.HTTP)
	require.Equal(t, "postgres://enrich@db/enrich", c.Store)
	require.Equal(t, "out", c.Dossiers)
	require.Equal(t, "debug", c.Log.Level)
	require.Equal(t, "json", c.Log.Format)
	require.Equal(t, 2*time.Minute, c.Lease.TTL.D())
	require.Equal(t, 10*time.Second, c.Lease.HeartbeatInterval.D())
}

func TestEnvEmptyValueIsUnset(t *testing.T) {
	t.Parallel()
	c, err := LoadWith("", envMap(map[string]string{"ENRICH_LISTEN": "", "ENRICH_LEASE_TTL": ""}))
	require.NoError(t, err)
	require.Equal(t, DefaultListen, c.Listen)
	require.Equal(t, DefaultLeaseTTL, c.Lease.TTL.D())
}

func TestEnvInvalid(t *testing.T) {
	t.Parallel()
	_, err := LoadWith("", envMap(map[string]string{"ENRICH_LEASE_TTL": "forever"}))
	require.EqualError(t, err, `ENRICH_LEASE_TTL: invalid duration "forever"`)

	// The heartbeat check runs after env is applied, so it sees both layers.
	_, err = LoadWith("", envMap(map[string]string{"ENRICH_HEARTBEAT_INTERVAL": "20s"}))
	require.ErrorContains(t, err, "lease.heartbeat_interval: 20s must be less than half of lease.ttl (30s)")
}

func TestLoadReportsValidationWithFile(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "resource_allocation:\n  persons:\n    entity_types: [Club]\n")
	_, err := LoadWith(path, noEnv)
	require.ErrorContains(t, err, path+": invalid configuration:")
	require.ErrorContains(t, err, `resource_allocation.persons.entity_types[0]: "Club" is already mapped to entities`)
}

func TestSeedResourceBlockIsRefusedClearly(t *testing.T) {
	t.Parallel()
	// The seed's per-instance keys describe estimates, not settings; they
	// must fail loudly rather than be ignored.
	msg := decodeErr(t, "resource_allocation:\n  instance_1:\n    max_concurrent_entities: 50\n")
	require.Contains(t, msg, "enrich.yaml:3: resource_allocation.instance_1.max_concurrent_entities: unknown key")
}

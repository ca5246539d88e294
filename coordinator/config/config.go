package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaults for the top-level blocks.
const (
	DefaultListen            = "127.0.0.1:7400"
	DefaultHTTP              = "127.0.0.1:7401"
	DefaultStore             = "sqlite:enrich.db"
	DefaultDossiers          = "dossiers"
	DefaultLogLevel          = "info"
	DefaultLogFormat         = "text"
	DefaultLeaseTTL          = 30 * time.Second
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultMaxRetries        = 3
	DefaultBackoff           = BackoffExponential
	DefaultBaseDelay         = 5 * time.Second
	DefaultMaxDelay          = 5 * time.Minute
	DefaultFailureHandling   = FailureContinueWithRemaining
)

// Defaults for an instance type declared in the file that is not built in;
// it must still name its entity types, schema and prompt.
const (
	DefaultBatchCapacity   = 25
	DefaultInstanceTimeout = 15 * time.Minute
)

// Values of RetryStrategy.Backoff.
const (
	BackoffExponential = "exponential"
	BackoffConstant    = "constant"
)

// Values of RetryStrategy.FailureHandling.
const (
	FailureContinueWithRemaining = "continue_with_remaining"
	FailureStopBatch             = "stop_batch"
)

// Config is the coordinator's configuration. See the package comment for
// where each value comes from.
type Config struct {
	Listen             string                    `yaml:"listen"`
	HTTP               string                    `yaml:"http"`
	Store              string                    `yaml:"store"`
	Dossiers           string                    `yaml:"dossiers"`
	Log                LogConfig                 `yaml:"log"`
	Lease              LeaseConfig               `yaml:"lease"`
	Consolidation      ConsolidationConfig       `yaml:"consolidation"`
	ResourceAllocation map[string]InstanceConfig `yaml:"resource_allocation"`
	RetryStrategy      RetryStrategy             `yaml:"retry_strategy"`
	Neo4j              Neo4jConfig               `yaml:"neo4j"`
	// TLS, Auth and Limits are described in security.go and docs/security.md.
	TLS    TLSConfig    `yaml:"tls"`
	Auth   AuthConfig   `yaml:"auth"`
	Limits LimitsConfig `yaml:"limits"`
}

// LogConfig selects the root logger's level and output format.
type LogConfig struct {
	Level  string `yaml:"level"`  // trace|debug|info|warn|error
	Format string `yaml:"format"` // text|json
}

// LeaseConfig sets how long an agent may stay silent before its leases are
// taken back, and how often it is told to heartbeat.
type LeaseConfig struct {
	TTL               Duration `yaml:"ttl"`
	HeartbeatInterval Duration `yaml:"heartbeat_interval"`
}

// ConsolidationConfig controls what happens when a batch finishes.
type ConsolidationConfig struct {
	// Auto is a pointer so that an explicit "auto: false" can be told apart
	// from an absent key when blocks are merged.
	Auto *bool `yaml:"auto"`
	// PDF also renders each dossier and the report to PDF at every consolidation
	// (enrichctl consolidate --pdf does it for one run).
	PDF bool `yaml:"pdf"`
}

// AutoEnabled reports whether finished batches are consolidated without an
// explicit enrichctl consolidate.
func (c ConsolidationConfig) AutoEnabled() bool { return c.Auto == nil || *c.Auto }

// InstanceConfig describes one instance type: which entity types it serves
// and how runs for it are scheduled.
type InstanceConfig struct {
	Alias         string   `yaml:"alias"`
	EntityTypes   []string `yaml:"entity_types"`
	BatchCapacity int      `yaml:"batch_capacity"`
	// MaxConcurrent caps leases in flight across the whole fleet; 0 means
	// no cap beyond the agents' own slots.
	MaxConcurrent int      `yaml:"max_concurrent"`
	Timeout       Duration `yaml:"timeout"`
	MemoryLimit   string   `yaml:"memory_limit"`
	RateLimit     string   `yaml:"rate_limit"`
	// BudgetUSD is this type's share of a batch's default budget; 0 means no cap (see
	// LaunchBatchRequest.budget_usd).
	BudgetUSD float64 `yaml:"budget_usd"`
	Schema    string  `yaml:"schema"`
	Prompt    string  `yaml:"prompt"`
	// Claude configures agents' Claude Code runner for this type (runner.go).
	Claude ClaudeConfig `yaml:"claude"`
}

// RetryStrategy says how failed runs are retried.
type RetryStrategy struct {
	// MaxRetries is a pointer because 0 (never retry) is a valid choice
	// that must survive merging onto the default of 3.
	MaxRetries *int `yaml:"max_retries"`
	// The seed spells this key backoff_strategy; both are accepted.
	Backoff         string   `yaml:"backoff" alias:"backoff_strategy"`
	BaseDelay       Duration `yaml:"base_delay"`
	MaxDelay        Duration `yaml:"max_delay"`
	FailureHandling string   `yaml:"failure_handling"`
}

// Retries returns the number of retries after the first attempt.
func (r RetryStrategy) Retries() int {
	if r.MaxRetries == nil {
		return DefaultMaxRetries
	}
	return *r.MaxRetries
}

// Default returns the built-in configuration. Each call returns a fresh
// value that the caller may modify.
func Default() *Config {
	auto := true
	retries := DefaultMaxRetries
	return &Config{
		Listen:   DefaultListen,
		HTTP:     DefaultHTTP,
		Store:    DefaultStore,
		Dossiers: DefaultDossiers,
		Log:      LogConfig{Level: DefaultLogLevel, Format: DefaultLogFormat},
		Lease: LeaseConfig{
			TTL:               Duration(DefaultLeaseTTL),
			HeartbeatInterval: Duration(DefaultHeartbeatInterval),
		},
		Consolidation:      ConsolidationConfig{Auto: &auto},
		ResourceAllocation: builtinInstances(),
		RetryStrategy: RetryStrategy{
			MaxRetries:      &retries,
			Backoff:         DefaultBackoff,
			BaseDelay:       Duration(DefaultBaseDelay),
			MaxDelay:        Duration(DefaultMaxDelay),
			FailureHandling: DefaultFailureHandling,
		},
		Neo4j:  defaultNeo4j(),
		Limits: defaultLimits(),
	}
}

// builtinInstances is the instance-type table of DESIGN.md. The names match
// the seed's output folders.
func builtinInstances() map[string]InstanceConfig {
	return map[string]InstanceConfig{
		"entities": {
			Alias:         "1",
			EntityTypes:   []string{"Club", "Organization", "Venue", "Partner"},
			BatchCapacity: 50,
			Timeout:       Duration(15 * time.Minute),
			MemoryLimit:   "4GB",
			Schema:        "entity_dossier",
			Prompt:        "entities",
		},
		"persons": {
			Alias:         "2",
			EntityTypes:   []string{"Person", "DecisionMaker", "Executive"},
			BatchCapacity: 25,
			Timeout:       Duration(20 * time.Minute),
			MemoryLimit:   "3GB",
			Schema:        "poi_dossier",
			Prompt:        "persons",
		},
		"leagues": {
			Alias:         "3",
			EntityTypes:   []string{"League", "Competition", "GoverningBody"},
			BatchCapacity: 15,
			Timeout:       Duration(15 * time.Minute),
			MemoryLimit:   "2GB",
			Schema:        "league_dossier",
			Prompt:        "leagues",
		},
	}
}

// seedInstanceNames maps the seed's key spelling to the built-in names, so a
// resource_allocation block copied from the seed lands on the right type.
var seedInstanceNames = map[string]string{
	"instance_1": "entities",
	"instance_2": "persons",
	"instance_3": "leagues",
}

// Load reads the configuration from path (skipped when path is ""), then the
// process environment, and validates the result.
func Load(path string) (*Config, error) {
	return LoadWith(path, os.LookupEnv)
}

// LoadWith is Load with the environment lookup injected, so tests need not
// touch the process environment.
func LoadWith(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	c := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if err := c.decodeYAML(path, data); err != nil {
			return nil, err
		}
	}
	if err := c.applyEnv(lookupEnv); err != nil {
		return nil, err
	}
	c.Neo4j.applyEnv(lookupEnv)
	if err := c.applySecurityEnv(lookupEnv); err != nil {
		return nil, err
	}
	// hclog and most operators treat levels case-insensitively; normalising
	// here keeps Validate and the binary's comparisons exact.
	c.Log.Level = strings.ToLower(c.Log.Level)
	c.Log.Format = strings.ToLower(c.Log.Format)
	if err := c.Validate(); err != nil {
		if path != "" {
			return nil, fmt.Errorf("%s: invalid configuration:\n%w", path, err)
		}
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return c, nil
}

// decodeYAML merges the YAML document in data onto c. name is used only in
// error messages.
func (c *Config) decodeYAML(name string, data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if doc.Kind == 0 {
		return nil // empty file or only comments: all defaults
	}
	d := &decoder{file: name}
	d.decodeDocument(&doc, c)
	return errors.Join(d.errs...)
}

// applyEnv overrides c with ENRICH_* variables. An empty value counts as
// unset, because deployment templates often export every variable whether
// or not it has a value.
func (c *Config) applyEnv(lookupEnv func(string) (string, bool)) error {
	strs := []struct {
		name string
		dst  *string
	}{
		{"ENRICH_LISTEN", &c.Listen},
		{"ENRICH_HTTP", &c.HTTP},
		{"ENRICH_STORE", &c.Store},
		{"ENRICH_DOSSIERS", &c.Dossiers},
		{"ENRICH_LOG_LEVEL", &c.Log.Level},
		{"ENRICH_LOG_FORMAT", &c.Log.Format},
	}
	for _, s := range strs {
		if v, ok := lookupEnv(s.name); ok && v != "" {
			*s.dst = v
		}
	}
	durs := []struct {
		name string
		dst  *Duration
	}{
		{"ENRICH_LEASE_TTL", &c.Lease.TTL},
		{"ENRICH_HEARTBEAT_INTERVAL", &c.Lease.HeartbeatInterval},
	}
	var errs []error
	for _, d := range durs {
		v, ok := lookupEnv(d.name)
		if !ok || v == "" {
			continue
		}
		parsed, err := parseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.name, err))
			continue
		}
		*d.dst = Duration(parsed)
	}
	return errors.Join(errs...)
}

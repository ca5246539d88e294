package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Defaults of the neo4j block.
const (
	DefaultNeo4jUser            = "neo4j"
	DefaultNeo4jPasswordEnv     = "NEO4J_PASSWORD"
	DefaultNeo4jBatchSize       = 500
	DefaultNeo4jEntityLabel     = "Entity"
	DefaultNeo4jSourceLabel     = "Source"
	DefaultNeo4jUnverifiedLabel = "Unverified"
	DefaultNeo4jRetryTimeout    = 2 * time.Minute
	DefaultNeo4jMissingTarget   = MissingTargetStub
	// A consolidation whose graph write gave up is tried again after 1m, 2m, 4m, ... up to 30m
	// apart, 8 times (about two hours of outage) before it waits for an operator.
	DefaultNeo4jConsolidationRetries       = 8
	DefaultNeo4jConsolidationRetryDelay    = time.Minute
	DefaultNeo4jConsolidationRetryMaxDelay = 30 * time.Minute
)

// Values of Neo4jConfig.MissingTarget.
const (
	// MissingTargetStub creates a relationship's missing target as a node
	// labelled Unverified, so the relationship is kept and the gap is visible.
	MissingTargetStub = "stub"
	// MissingTargetReport leaves the relationship out and lists it in the report.
	MissingTargetReport = "report"
)

// Neo4jConfig is the knowledge graph. With no URI, consolidation writes
// graph.cypher and JSON Lines files for a later load instead of a server.
//
// Labels and relationship types are the only names ever put into Cypher
// text, so they come from here and are checked to be plain identifiers;
// everything taken from a dossier is a query parameter.
type Neo4jConfig struct {
	URI  string `yaml:"uri"`
	User string `yaml:"user"`
	// PasswordEnv names the environment variable holding the password, so
	// the secret never sits in the file.
	PasswordEnv string `yaml:"password_env"`
	// Password is read from PasswordEnv at load time.
	Password string `yaml:"-"`
	// Database is the database name; empty uses the server's default.
	Database string `yaml:"database"`
	// BatchSize is the number of rows per UNWIND statement and transaction.
	BatchSize int `yaml:"batch_size"`
	// Labels maps an entity type to its node label.
	Labels map[string]string `yaml:"labels"`
	// RelationshipTypes is the closed list of relationship types written;
	// a dossier relationship of another type is reported and left out.
	RelationshipTypes []string `yaml:"relationship_types"`
	MissingTarget     string   `yaml:"missing_target"`
	// EntityLabel is on every entity node and carries the id uniqueness
	// constraint; SourceLabel and UnverifiedLabel name provenance and stub
	// nodes. Distinct values let several deployments (or tests) share a
	// server without touching each other's nodes.
	EntityLabel     string `yaml:"entity_label"`
	SourceLabel     string `yaml:"source_label"`
	UnverifiedLabel string `yaml:"unverified_label"`
	// RetryTimeout bounds how long one consolidation keeps retrying an
	// unreachable server before it records the failure.
	RetryTimeout Duration `yaml:"retry_timeout"`
	// ConsolidationRetries bounds how often the coordinator consolidates a batch again by
	// itself after its graph write gave up on an unreachable server (0: never); the delay
	// starts at ConsolidationRetryDelay and doubles up to ConsolidationRetryMaxDelay.
	ConsolidationRetries       int      `yaml:"consolidation_retries"`
	ConsolidationRetryDelay    Duration `yaml:"consolidation_retry_delay"`
	ConsolidationRetryMaxDelay Duration `yaml:"consolidation_retry_max_delay"`
}

// RetryDelay is the wait before the attempt-th automatic consolidation retry (1-based).
func (n Neo4jConfig) RetryDelay(attempt int) time.Duration {
	d := n.ConsolidationRetryDelay.D()
	for i := 1; i < attempt && d < n.ConsolidationRetryMaxDelay.D(); i++ {
		d *= 2
	}
	return min(d, n.ConsolidationRetryMaxDelay.D())
}

// Enabled reports whether a server is configured.
func (n Neo4jConfig) Enabled() bool { return n.URI != "" }

// LabelFor returns the configured label of an entity type.
func (n Neo4jConfig) LabelFor(entityType string) (string, bool) {
	l, ok := n.Labels[entityType]
	return l, ok
}

// DefaultRelationshipTypes is the union of the types the dossier schemas allow.
var DefaultRelationshipTypes = []string{
	"WORKS_FOR", "MEMBER_OF", "COMPETES_IN", "GOVERNED_BY", "PARTNER_OF",
	"PLAYS_AT", "OWNS", "SPONSORS", "AFFILIATED_WITH",
}

func defaultNeo4j() Neo4jConfig {
	labels := map[string]string{}
	for _, ic := range builtinInstances() {
		for _, t := range ic.EntityTypes {
			labels[t] = t
		}
	}
	return Neo4jConfig{
		User:              DefaultNeo4jUser,
		PasswordEnv:       DefaultNeo4jPasswordEnv,
		BatchSize:         DefaultNeo4jBatchSize,
		Labels:            labels,
		RelationshipTypes: slices.Clone(DefaultRelationshipTypes),
		MissingTarget:     DefaultNeo4jMissingTarget,
		EntityLabel:       DefaultNeo4jEntityLabel,
		SourceLabel:       DefaultNeo4jSourceLabel,
		UnverifiedLabel:   DefaultNeo4jUnverifiedLabel,
		RetryTimeout:      Duration(DefaultNeo4jRetryTimeout),

		ConsolidationRetries:       DefaultNeo4jConsolidationRetries,
		ConsolidationRetryDelay:    Duration(DefaultNeo4jConsolidationRetryDelay),
		ConsolidationRetryMaxDelay: Duration(DefaultNeo4jConsolidationRetryMaxDelay),
	}
}

// CheckNeo4jURI checks that uri is a Neo4j address the driver accepts.
func CheckNeo4jURI(uri string) error {
	u, err := url.Parse(uri)
	switch {
	case err != nil:
		return err
	case !slices.Contains(uriSchemes, u.Scheme):
		return fmt.Errorf("scheme %q is not one of %s", u.Scheme, strings.Join(uriSchemes, ", "))
	case u.Host == "":
		return fmt.Errorf("%q names no host", uri)
	}
	return nil
}

// applyEnv reads NEO4J_URI and NEO4J_USER over the file, and the password
// from the variable PasswordEnv names.
func (n *Neo4jConfig) applyEnv(lookupEnv func(string) (string, bool)) {
	if v, ok := lookupEnv("NEO4J_URI"); ok && v != "" {
		n.URI = v
	}
	if v, ok := lookupEnv("NEO4J_USER"); ok && v != "" {
		n.User = v
	}
	if n.PasswordEnv != "" {
		if v, ok := lookupEnv(n.PasswordEnv); ok {
			n.Password = v
		}
	}
}

var (
	// A label or relationship type is written into Cypher text (backquoted
	// too), so only plain identifiers are accepted.
	labelRE    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)
	relTypeRE  = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)
	envNameRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	uriSchemes = []string{"neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc"}
)

func (n Neo4jConfig) validate() []error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("neo4j.%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if n.URI != "" {
		if err := CheckNeo4jURI(n.URI); err != nil {
			add("uri", "%v", err)
		}
	}
	if n.PasswordEnv != "" && !envNameRE.MatchString(n.PasswordEnv) {
		add("password_env", "%q is not an environment variable name", n.PasswordEnv)
	}
	if n.BatchSize < 1 || n.BatchSize > 50000 {
		add("batch_size", "must be between 1 and 50000, got %d", n.BatchSize)
	}
	for _, p := range []struct{ key, v string }{
		{"entity_label", n.EntityLabel}, {"source_label", n.SourceLabel}, {"unverified_label", n.UnverifiedLabel},
	} {
		if !labelRE.MatchString(p.v) {
			add(p.key, "%q is not a plain label (letters, digits, _; starting with a letter)", p.v)
		}
	}
	if n.EntityLabel == n.SourceLabel || n.EntityLabel == n.UnverifiedLabel || n.SourceLabel == n.UnverifiedLabel {
		add("entity_label", "entity_label, source_label and unverified_label must differ")
	}
	types := make([]string, 0, len(n.Labels))
	for t := range n.Labels {
		types = append(types, t)
	}
	slices.Sort(types)
	for _, t := range types {
		if l := n.Labels[t]; !labelRE.MatchString(l) {
			add("labels."+t, "%q is not a plain label (letters, digits, _; starting with a letter)", l)
		}
	}
	if len(n.RelationshipTypes) == 0 {
		add("relationship_types", "must list at least one type")
	}
	for i, t := range n.RelationshipTypes {
		if !relTypeRE.MatchString(t) {
			add(fmt.Sprintf("relationship_types[%d]", i), "%q is not an upper-case relationship type (A-Z, 0-9, _)", t)
		}
	}
	if !oneOf(n.MissingTarget, []string{MissingTargetStub, MissingTargetReport}) {
		add("missing_target", "%q is not one of %s, %s", n.MissingTarget, MissingTargetStub, MissingTargetReport)
	}
	if n.RetryTimeout < 0 {
		add("retry_timeout", "must not be negative")
	}
	if n.ConsolidationRetries < 0 || n.ConsolidationRetries > 1000 {
		add("consolidation_retries", "must be between 0 and 1000, got %d", n.ConsolidationRetries)
	}
	if n.ConsolidationRetryDelay < Duration(time.Second) {
		add("consolidation_retry_delay", "must be at least 1s")
	}
	if n.ConsolidationRetryMaxDelay < n.ConsolidationRetryDelay {
		add("consolidation_retry_max_delay", "must not be shorter than consolidation_retry_delay")
	}
	return errs
}

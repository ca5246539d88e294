package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
)

var (
	logLevels  = []string{"trace", "debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
	backoffs   = []string{BackoffExponential, BackoffConstant}
	failures   = []string{FailureContinueWithRemaining, FailureStopBatch}

	// Instance names become output folder names and metric labels.
	instanceNameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	// Schema and prompt names select embedded files.
	fileNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
)

// Validate checks c as a whole and returns every problem found, each naming
// its key path.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}

	for _, a := range []struct{ path, v string }{{"listen", c.Listen}, {"http", c.HTTP}} {
		if err := checkHostPort(a.v); err != nil {
			add(a.path, "%v", err)
		}
	}
	if err := checkStore(c.Store); err != nil {
		add("store", "%v", err)
	}
	if c.Dossiers == "" {
		add("dossiers", "must not be empty")
	}
	if !oneOf(c.Log.Level, logLevels) {
		add("log.level", "%q is not one of %s", c.Log.Level, strings.Join(logLevels, ", "))
	}
	if !oneOf(c.Log.Format, logFormats) {
		add("log.format", "%q is not one of %s", c.Log.Format, strings.Join(logFormats, ", "))
	}

	ttl, hb := c.Lease.TTL.D(), c.Lease.HeartbeatInterval.D()
	if ttl <= 0 {
		add("lease.ttl", "must be more than 0")
	}
	switch {
	case hb <= 0:
		add("lease.heartbeat_interval", "must be more than 0")
	case ttl > 0 && hb >= ttl/2:
		// Two heartbeats must fit in a TTL, or one lost heartbeat expires
		// a healthy lease.
		add("lease.heartbeat_interval", "%s must be less than half of lease.ttl (%s)", hb, ttl)
	}

	errs = append(errs, c.validateInstances()...)

	r := c.RetryStrategy
	if r.MaxRetries != nil && *r.MaxRetries < 0 {
		add("retry_strategy.max_retries", "must be 0 or more, got %d", *r.MaxRetries)
	}
	if !oneOf(r.Backoff, backoffs) {
		add("retry_strategy.backoff", "%q is not one of %s", r.Backoff, strings.Join(backoffs, ", "))
	}
	if r.BaseDelay <= 0 {
		add("retry_strategy.base_delay", "must be more than 0")
	}
	if r.MaxDelay < r.BaseDelay {
		add("retry_strategy.max_delay", "%s must not be less than retry_strategy.base_delay (%s)", r.MaxDelay, r.BaseDelay)
	}
	if !oneOf(r.FailureHandling, failures) {
		add("retry_strategy.failure_handling", "%q is not one of %s", r.FailureHandling, strings.Join(failures, ", "))
	}
	errs = append(errs, c.Neo4j.validate()...)
	errs = append(errs, c.validateSecurity()...)
	return errors.Join(errs...)
}

func (c *Config) validateInstances() []error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if len(c.ResourceAllocation) == 0 {
		add("resource_allocation", "at least one instance type is needed")
		return errs
	}
	aliasOwner := make(map[string]string)
	typeOwner := make(map[string]string) // lower-cased entity type -> instance
	names := c.InstanceNames()
	for _, name := range names {
		ic := c.ResourceAllocation[name]
		p := "resource_allocation." + name
		if !instanceNameRE.MatchString(name) {
			add(p, "instance type name must be lower-case letters, digits, '_' or '-', starting with a letter")
		}
		if ic.Alias != "" {
			if other, dup := aliasOwner[ic.Alias]; dup {
				add(p+".alias", "%q is already the alias of %s", ic.Alias, other)
			} else if _, clash := c.ResourceAllocation[ic.Alias]; clash && ic.Alias != name {
				add(p+".alias", "%q is the name of another instance type", ic.Alias)
			} else {
				aliasOwner[ic.Alias] = name
			}
		}
		if len(ic.EntityTypes) == 0 {
			add(p+".entity_types", "must list at least one entity type")
		}
		for i, t := range ic.EntityTypes {
			tp := fmt.Sprintf("%s.entity_types[%d]", p, i)
			if strings.TrimSpace(t) == "" {
				add(tp, "must not be empty")
				continue
			}
			key := strings.ToLower(t)
			if other, dup := typeOwner[key]; dup {
				// Case-insensitive, because InstanceForEntityType falls
				// back to a case-insensitive match.
				if other == name {
					add(tp, "%q is listed twice", t)
				} else {
					add(tp, "%q is already mapped to %s", t, other)
				}
				continue
			}
			typeOwner[key] = name
		}
		if ic.BatchCapacity <= 0 {
			add(p+".batch_capacity", "must be more than 0, got %d", ic.BatchCapacity)
		}
		if ic.MaxConcurrent < 0 {
			add(p+".max_concurrent", "must be 0 (no cap) or more, got %d", ic.MaxConcurrent)
		}
		if ic.Timeout <= 0 {
			add(p+".timeout", "must be more than 0")
		}
		if _, err := ic.MemoryLimitBytes(); err != nil {
			add(p+".memory_limit", "%v", err)
		}
		if ic.BudgetUSD < 0 || math.IsNaN(ic.BudgetUSD) || math.IsInf(ic.BudgetUSD, 0) {
			add(p+".budget_usd", "must be 0 (no cap) or a positive amount, got %v", ic.BudgetUSD)
		}
		if _, err := parseRate(ic.RateLimit); err != nil {
			add(p+".rate_limit", "%v", err)
		}
		if !safeFileName(ic.Schema) {
			add(p+".schema", "%q is not a schema name", ic.Schema)
		}
		if !safeFileName(ic.Prompt) {
			add(p+".prompt", "%q is not a prompt name", ic.Prompt)
		}
		errs = append(errs, ic.Claude.validate(p+".claude")...)
	}
	return errs
}

func safeFileName(s string) bool {
	return fileNameRE.MatchString(s) && !strings.Contains(s, "..")
}

func oneOf(v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

func checkHostPort(addr string) error {
	if addr == "" {
		return errors.New("must not be empty (want host:port)")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid address %q (want host:port)", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("invalid port in %q", addr)
	}
	return nil
}

// checkStore never echoes the value back: a postgres URL may carry a
// password.
func checkStore(s string) error {
	switch {
	case strings.HasPrefix(s, "sqlite:"):
		if strings.TrimPrefix(s, "sqlite:") == "" {
			return errors.New(`"sqlite:" needs a file name, e.g. "sqlite:enrich.db"`)
		}
		return nil
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		return nil
	case s == "":
		return errors.New(`must not be empty (want "sqlite:<file>" or "postgres://...")`)
	}
	scheme, _, _ := strings.Cut(s, ":")
	return fmt.Errorf(`unsupported store %q (want "sqlite:<file>" or "postgres://...")`, scheme)
}

package config

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// MemoryLimitBytes parses MemoryLimit. SI units (KB, MB, GB, TB) are powers
// of 1000 and IEC units (KiB, MiB, GiB, TiB) powers of 1024, so "4GB" and
// "4GiB" mean what they say. An empty limit returns 0: no limit.
func (ic InstanceConfig) MemoryLimitBytes() (int64, error) {
	if ic.MemoryLimit == "" {
		return 0, nil
	}
	return parseByteSize(ic.MemoryLimit)
}

// RatePerSecond returns the start rate limit in runs per second, or 0 when
// there is none. Validate rejects a malformed rate, so 0 is also returned
// for one that slipped past it rather than a guess.
func (ic InstanceConfig) RatePerSecond() float64 {
	r, err := parseRate(ic.RateLimit)
	if err != nil {
		return 0
	}
	return r
}

var byteSizeRE = regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)\s*$`)

var byteUnits = map[string]float64{
	"b":   1,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

func parseByteSize(s string) (int64, error) {
	m := byteSizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("invalid size %q (want a number and a unit, e.g. \"4GB\" or \"512MiB\")", s)
	}
	unit, ok := byteUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (known: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)", s, m[2])
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	b := n * unit
	if b < 1 {
		return 0, fmt.Errorf("invalid size %q: must be at least 1 byte", s)
	}
	if b >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return int64(b), nil
}

var rateRE = regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*([A-Za-z]+)\s*$`)

var ratePeriods = map[string]float64{
	"s": 1, "sec": 1, "second": 1,
	"m": 60, "min": 60, "minute": 60,
	"h": 3600, "hour": 3600,
}

// parseRate returns runs per second; "" means no limit and returns 0.
func parseRate(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	m := rateRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("invalid rate %q (want runs per period, e.g. \"10/m\" or \"2/s\")", s)
	}
	period, ok := ratePeriods[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("invalid rate %q: unknown period %q (known: s, m, h)", s, m[2])
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("invalid rate %q: must be more than 0", s)
	}
	return n / period, nil
}

// InstanceNames returns the configured instance types ordered by alias
// (numerically where aliases are numbers), then by name.
func (c *Config) InstanceNames() []string {
	names := make([]string, 0, len(c.ResourceAllocation))
	for name := range c.ResourceAllocation {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		ai, aj := c.ResourceAllocation[names[i]].Alias, c.ResourceAllocation[names[j]].Alias
		if cmp := compareAlias(ai, aj); cmp != 0 {
			return cmp < 0
		}
		return names[i] < names[j]
	})
	return names
}

// compareAlias orders numeric aliases by value ("2" before "10"), then other
// aliases as strings, then instance types without one.
func compareAlias(a, b string) int {
	if a == b {
		return 0
	}
	if a == "" || b == "" {
		if a == "" {
			return 1
		}
		return -1
	}
	na, errA := strconv.Atoi(a)
	nb, errB := strconv.Atoi(b)
	switch {
	case errA == nil && errB == nil:
		if na != nb {
			if na < nb {
				return -1
			}
			return 1
		}
	case errA == nil:
		return -1
	case errB == nil:
		return 1
	}
	return strings.Compare(a, b)
}

// InstanceForEntityType returns the instance type serving entity type t. An
// exact match wins; otherwise a case-insensitive one is accepted, since
// input files written by hand often say "club" for "Club". Validate ensures
// the case-insensitive match is unambiguous.
func (c *Config) InstanceForEntityType(t string) (string, bool) {
	names := c.InstanceNames()
	for _, name := range names {
		if slices.Contains(c.ResourceAllocation[name].EntityTypes, t) {
			return name, true
		}
	}
	for _, name := range names {
		for _, et := range c.ResourceAllocation[name].EntityTypes {
			if strings.EqualFold(et, t) {
				return name, true
			}
		}
	}
	return "", false
}

// ResolveInstance accepts an instance type's name ("entities"), its alias
// ("1") or the seed's spelling of the alias ("instance_1") and returns the
// name.
func (c *Config) ResolveInstance(nameOrAlias string) (string, bool) {
	s := strings.TrimSpace(nameOrAlias)
	if s == "" {
		return "", false
	}
	if _, ok := c.ResourceAllocation[s]; ok {
		return s, true
	}
	alias := s
	if rest, ok := strings.CutPrefix(s, "instance_"); ok {
		alias = rest
	}
	for _, name := range c.InstanceNames() {
		if a := c.ResourceAllocation[name].Alias; a != "" && a == alias {
			return name, true
		}
	}
	return "", false
}

// KnownEntityTypes returns every configured entity type, sorted.
func (c *Config) KnownEntityTypes() []string {
	var types []string
	for _, ic := range c.ResourceAllocation {
		types = append(types, ic.EntityTypes...)
	}
	sort.Strings(types)
	return slices.Compact(types)
}

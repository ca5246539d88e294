package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMemoryLimitBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		err  string
	}{
		{"", 0, ""},
		{"4GB", 4_000_000_000, ""},
		{"512MiB", 512 << 20, ""},
		{"1.5 GiB", 3 << 29, ""},
		{"4gb", 4_000_000_000, ""},
		{"100B", 100, ""},
		{"4", 0, `invalid size "4" (want a number and a unit`},
		{"4G", 0, `unknown unit "G"`},
		{"0MB", 0, "must be at least 1 byte"},
		{"99999999TiB", 0, "too large"},
	}
	for _, tt := range tests {
		got, err := InstanceConfig{MemoryLimit: tt.in}.MemoryLimitBytes()
		if tt.err != "" {
			require.ErrorContains(t, err, tt.err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got, tt.in)
	}
}

func TestRatePerSecond(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want float64
	}{
		{"", 0},
		{"2/s", 2},
		{"10/m", 10.0 / 60},
		{"30 / min", 0.5},
		{"360/h", 0.1},
		{"0/s", 0},
		{"fast", 0},
	}
	for _, tt := range tests {
		require.InDelta(t, tt.want, InstanceConfig{RateLimit: tt.in}.RatePerSecond(), 1e-9, tt.in)
	}
}

func TestResolveInstance(t *testing.T) {
	t.Parallel()
	c := Default()
	for in, want := range map[string]string{
		"entities": "entities", "1": "entities", "instance_1": "entities",
		"persons": "persons", "2": "persons", " instance_2 ": "persons",
		"leagues": "leagues", "3": "leagues", "instance_3": "leagues",
	} {
		got, ok := c.ResolveInstance(in)
		require.True(t, ok, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "4", "instance_", "instance_4", "Entities"} {
		_, ok := c.ResolveInstance(in)
		require.False(t, ok, in)
	}
}

func TestInstanceForEntityType(t *testing.T) {
	t.Parallel()
	c := Default()
	for in, want := range map[string]string{
		"Club": "entities", "club": "entities", "PARTNER": "entities",
		"DecisionMaker": "persons", "decisionmaker": "persons",
		"GoverningBody": "leagues",
	} {
		got, ok := c.InstanceForEntityType(in)
		require.True(t, ok, in)
		require.Equal(t, want, got, in)
	}
	_, ok := c.InstanceForEntityType("Stadium")
	require.False(t, ok)
}

func TestInstanceForEntityTypePrefersExactMatch(t *testing.T) {
	t.Parallel()
	// Validate refuses this, but the lookup must still be deterministic for
	// a Config built in code.
	c := Default()
	setInstance(c, "leagues", func(ic *InstanceConfig) { ic.EntityTypes = []string{"club"} })
	got, _ := c.InstanceForEntityType("club")
	require.Equal(t, "leagues", got)
}

func TestKnownEntityTypes(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{
		"Club", "Competition", "DecisionMaker", "Executive", "GoverningBody",
		"League", "Organization", "Partner", "Person", "Venue",
	}, Default().KnownEntityTypes())
}

func TestInstanceNamesOrder(t *testing.T) {
	t.Parallel()
	c := Default()
	add := func(name, alias string) {
		c.ResourceAllocation[name] = InstanceConfig{Alias: alias}
	}
	add("tenth", "10")
	add("zeta", "")
	add("alpha", "")
	add("named", "x")
	require.Equal(t, []string{"entities", "persons", "leagues", "tenth", "named", "alpha", "zeta"}, c.InstanceNames())
}

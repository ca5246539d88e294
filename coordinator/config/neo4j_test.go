package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNeo4jDefaultsAreOffWithIdentityLabels(t *testing.T) {
	t.Parallel()
	c, err := LoadWith("", noEnv)
	require.NoError(t, err)
	require.False(t, c.Neo4j.Enabled())
	l, ok := c.Neo4j.LabelFor("GoverningBody")
	require.True(t, ok)
	require.Equal(t, "GoverningBody", l)
	require.Equal(t, MissingTargetStub, c.Neo4j.MissingTarget)
	require.Equal(t, DefaultNeo4jBatchSize, c.Neo4j.BatchSize)
}

func TestNeo4jFileAndEnvironment(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `
neo4j:
  uri: bolt://graph.internal:7687
  user: enricher
  password_env: GRAPH_SECRET
  database: sports
  batch_size: 200
  labels:
    Club: FootballClub
  relationship_types: [PLAYS_AT, OWNS]
  missing_target: report
  retry_timeout: 30s
`)
	c, err := LoadWith(path, envMap(map[string]string{"GRAPH_SECRET": "s3cret", "NEO4J_PASSWORD": "not-this-one"}))
	require.NoError(t, err)
	n := c.Neo4j
	require.Equal(t, "bolt://graph.internal:7687", n.URI)
	require.Equal(t, "enricher", n.User)
	require.Equal(t, "s3cret", n.Password)
	require.Equal(t, "sports", n.Database)
	require.Equal(t, 200, n.BatchSize)
	require.Equal(t, "FootballClub", n.Labels["Club"])
	require.Equal(t, "Person", n.Labels["Person"], "a labels block extends the built-in map")
	require.Equal(t, []string{"PLAYS_AT", "OWNS"}, n.RelationshipTypes)
	require.Equal(t, MissingTargetReport, n.MissingTarget)
	require.Equal(t, 30*time.Second, n.RetryTimeout.D())

	c, err = LoadWith(path, envMap(map[string]string{"NEO4J_URI": "neo4j://other:7687", "NEO4J_USER": "ops"}))
	require.NoError(t, err)
	require.Equal(t, "neo4j://other:7687", c.Neo4j.URI, "the environment overrides the file")
	require.Equal(t, "ops", c.Neo4j.User)
}

func TestNeo4jRejectsNamesThatWouldBeCypher(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"label with backtick": "neo4j:\n  labels:\n    Club: \"Club`) DETACH DELETE n //\"\n",
		"lower-case rel type": "neo4j:\n  relationship_types: [works_for]\n",
		"rel type with space": "neo4j:\n  relationship_types: [\"WORKS FOR\"]\n",
		"bad scheme":          "neo4j:\n  uri: http://localhost:7474\n",
		"missing target":      "neo4j:\n  missing_target: ignore\n",
		"batch size":          "neo4j:\n  batch_size: 0\n",
		"same labels":         "neo4j:\n  source_label: Entity\n",
	} {
		_, err := LoadWith(writeConfig(t, body), noEnv)
		require.Error(t, err, name)
		require.Contains(t, err.Error(), "neo4j.", name)
	}
}

// Automatic consolidation retries back off by doubling up to the maximum, and nonsense values
// are refused.
func TestNeo4jConsolidationRetries(t *testing.T) {
	t.Parallel()
	c, err := LoadWith(writeConfig(t, "neo4j:\n  consolidation_retries: 3\n  consolidation_retry_delay: 10s\n  consolidation_retry_max_delay: 25s\n"), noEnv)
	require.NoError(t, err)
	n := c.Neo4j
	require.Equal(t, 3, n.ConsolidationRetries)
	require.Equal(t, []time.Duration{10 * time.Second, 20 * time.Second, 25 * time.Second, 25 * time.Second},
		[]time.Duration{n.RetryDelay(1), n.RetryDelay(2), n.RetryDelay(3), n.RetryDelay(40)})

	d, err := LoadWith("", noEnv)
	require.NoError(t, err)
	require.Equal(t, DefaultNeo4jConsolidationRetries, d.Neo4j.ConsolidationRetries)
	require.Equal(t, time.Minute, d.Neo4j.RetryDelay(1))
	require.Equal(t, 30*time.Minute, d.Neo4j.RetryDelay(8))

	for name, body := range map[string]string{
		"negative retries": "neo4j:\n  consolidation_retries: -1\n",
		"tiny delay":       "neo4j:\n  consolidation_retry_delay: 10ms\n",
		"max below delay":  "neo4j:\n  consolidation_retry_delay: 1m\n  consolidation_retry_max_delay: 30s\n",
	} {
		_, err := LoadWith(writeConfig(t, body), noEnv)
		require.Error(t, err, name)
		require.Contains(t, err.Error(), "neo4j.consolidation_retr", name)
	}
}

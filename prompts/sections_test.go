package prompts_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
	"github.com/sportsintel/enrich/prompts"
	"github.com/sportsintel/enrich/schemas"
)

// Every claim section of a schema (an object with confidence and source_urls) must be asked for
// by its prompt, so a section added to a schema is not silently left empty by the model.
func TestPromptsAskForEverySection(t *testing.T) {
	t.Parallel()
	for tmpl, schema := range map[string]string{"entities": schemas.EntityDossier, "persons": schemas.POIDossier, "leagues": schemas.LeagueDossier} {
		t.Run(tmpl, func(t *testing.T) {
			t.Parallel()
			raw, err := schemas.Raw(schema)
			require.NoError(t, err)
			out, err := prompts.Render(tmpl, prompts.Data{Entity: &enrichv1.Entity{Id: "x", Type: "T", Name: "X"},
				InstanceType: tmpl, Schema: schema, SchemaJSON: string(raw), Attempt: 1})
			require.NoError(t, err)
			var s struct {
				Properties map[string]struct {
					Properties map[string]json.RawMessage `json:"properties"`
				} `json:"properties"`
			}
			require.NoError(t, json.Unmarshal(raw, &s))
			sections := 0
			for name, p := range s.Properties {
				_, conf := p.Properties["confidence"]
				_, urls := p.Properties["source_urls"]
				if conf && urls {
					sections++
					require.Contains(t, out, "**`"+name+"`**", "the prompt does not ask for section %s", name)
				}
			}
			require.GreaterOrEqual(t, sections, 4)
			for _, must := range []string{"read_neo4j_cypher", "search_engine", "source_urls", "below 0.3", "retrieved_at"} {
				require.Contains(t, out, must)
			}
		})
	}
}

package prompts_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
	"github.com/sportsintel/enrich/prompts"
	"github.com/sportsintel/enrich/schemas"
)

// Entity text is data, never template source: template actions in ids, names or attributes
// come out as the literal text, and nothing else of the template data leaks through them.
func TestEntityTextCannotInjectTemplateActions(t *testing.T) {
	t.Parallel()
	raw, err := schemas.Raw(schemas.EntityDossier)
	require.NoError(t, err)
	inject := `{{.SchemaJSON}}{{template "_shared.tmpl" .}}{{printf "%s" "pwned"}}`
	out, err := prompts.Render("entities", prompts.Data{
		Entity: &enrichv1.Entity{Id: "club-" + inject, Type: "Club", Name: inject,
			Attributes: map[string]string{"note": inject, inject: "key"}},
		InstanceType: "entities", Schema: schemas.EntityDossier, SchemaJSON: string(raw), Attempt: 1,
	})
	require.NoError(t, err)
	// The action text survives literally (JSON-escaped in the entity record)...
	require.Contains(t, out, `{{.SchemaJSON}}{{template \"_shared.tmpl\" .}}`)
	// ...and was not executed: the schema appears exactly as often as without the injection.
	clean, err := prompts.Render("entities", prompts.Data{
		Entity:       &enrichv1.Entity{Id: "club-x", Type: "Club", Name: "x"},
		InstanceType: "entities", Schema: schemas.EntityDossier, SchemaJSON: string(raw), Attempt: 1,
	})
	require.NoError(t, err)
	const marker = `"$schema"`
	require.Positive(t, strings.Count(clean, marker))
	require.Equal(t, strings.Count(clean, marker), strings.Count(out, marker))
	// Every "pwned" is the escaped literal inside the record, none an executed printf.
	require.Positive(t, strings.Count(out, "pwned"))
	require.Equal(t, strings.Count(out, `\"pwned\"`), strings.Count(out, "pwned"))
}

package schemas_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/schemas"
)

func TestNames(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"entity_dossier", "league_dossier", "poi_dossier"}, schemas.Names())
}

func TestRaw(t *testing.T) {
	t.Parallel()
	for _, name := range schemas.Names() {
		raw, err := schemas.Raw(name)
		require.NoError(t, err)
		require.True(t, json.Valid(raw), name)
		require.Contains(t, string(raw), "2020-12/schema")
	}
	_, err := schemas.Raw("nope")
	require.ErrorContains(t, err, `unknown schema "nope"`)
	require.ErrorContains(t, err, "entity_dossier, league_dossier, poi_dossier")
}

func TestValidateUnknownSchema(t *testing.T) {
	t.Parallel()
	err := schemas.Validate("club", []byte(`{}`))
	require.ErrorContains(t, err, "known: entity_dossier")
}

func TestValidExamples(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ schema, file string }{
		{schemas.EntityDossier, "entity_dossier.valid.json"},
		{schemas.POIDossier, "poi_dossier.valid.json"},
		{schemas.LeagueDossier, "league_dossier.valid.json"},
		{schemas.EntityDossier, "offline.valid.json"},
		{schemas.POIDossier, "offline.valid.json"},
		{schemas.LeagueDossier, "offline.valid.json"},
	} {
		t.Run(tc.schema+"/"+tc.file, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, schemas.Validate(tc.schema, readFile(t, tc.file)))
		})
	}
}

func TestValidateRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		schema string
		file   string
		mutate func(doc map[string]any)
		want   []string
	}{
		{
			name: "missing field", schema: schemas.EntityDossier, file: "entity_dossier.valid.json",
			mutate: func(d map[string]any) { delete(d, "entity_id") },
			want:   []string{"/: missing property 'entity_id'"},
		},
		{
			name: "wrong mode enum", schema: schemas.EntityDossier, file: "entity_dossier.valid.json",
			mutate: func(d map[string]any) { d["mode"] = "guess" },
			want:   []string{"/mode:", "'research'"},
		},
		{
			name: "wrong relationship type", schema: schemas.LeagueDossier, file: "league_dossier.valid.json",
			mutate: func(d map[string]any) { d["relationships"].([]any)[0].(map[string]any)["type"] = "RIVAL_OF" },
			want:   []string{"/relationships/0/type:"},
		},
		{
			name: "bad date", schema: schemas.POIDossier, file: "poi_dossier.valid.json",
			mutate: func(d map[string]any) { d["generated_at"] = "10/01/2025" },
			want:   []string{"/generated_at:", "date-time"},
		},
		{
			name: "bad source url", schema: schemas.POIDossier, file: "poi_dossier.valid.json",
			mutate: func(d map[string]any) { d["sources"].([]any)[0].(map[string]any)["url"] = "not a url" },
			want:   []string{"/sources/0/url:", "uri"},
		},
		{
			name: "confidence above one", schema: schemas.LeagueDossier, file: "league_dossier.valid.json",
			mutate: func(d map[string]any) { d["confidence"] = 1.5 },
			want:   []string{"/confidence:"},
		},
		{
			name: "typo at top level", schema: schemas.EntityDossier, file: "entity_dossier.valid.json",
			mutate: func(d map[string]any) { d["sumary"] = "x" },
			want:   []string{"/:", "'sumary'"},
		},
		{
			name: "type-specific object of another schema", schema: schemas.EntityDossier, file: "entity_dossier.valid.json",
			mutate: func(d map[string]any) { d["person"] = map[string]any{} },
			want:   []string{"'person'"},
		},
		{
			name: "offline with sources", schema: schemas.EntityDossier, file: "offline.valid.json",
			mutate: func(d map[string]any) {
				d["sources"] = []any{map[string]any{"url": "https://example.com"}}
			},
			want: []string{"/sources: maxItems"},
		},
		{
			name: "offline with confidence", schema: schemas.LeagueDossier, file: "offline.valid.json",
			mutate: func(d map[string]any) { d["confidence"] = 0.4 },
			want:   []string{"/confidence: maximum"},
		},
		{
			name: "research without sources", schema: schemas.LeagueDossier, file: "league_dossier.valid.json",
			mutate: func(d map[string]any) { d["sources"] = []any{} },
			want:   []string{"/sources: minItems"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var doc map[string]any
			require.NoError(t, json.Unmarshal(readFile(t, tc.file), &doc))
			tc.mutate(doc)
			raw, err := json.Marshal(doc)
			require.NoError(t, err)

			err = schemas.Validate(tc.schema, raw)
			require.Error(t, err)
			var verr *schemas.Error
			require.ErrorAs(t, err, &verr)
			require.Equal(t, tc.schema, verr.Schema)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestValidateNotJSON(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{``, `{"entity_id":`, `Here is the dossier: {}`, `{} {}`} {
		err := schemas.Validate(schemas.EntityDossier, []byte(doc))
		require.ErrorContains(t, err, "not valid JSON", "doc %q", doc)
	}
}

func TestValidateBoundsViolations(t *testing.T) {
	t.Parallel()
	facts := make([]any, 50)
	for i := range facts {
		facts[i] = map[string]any{"label": "", "value": ""}
	}
	var doc map[string]any
	require.NoError(t, json.Unmarshal(readFile(t, "entity_dossier.valid.json"), &doc))
	doc["key_facts"] = facts
	raw, err := json.Marshal(doc)
	require.NoError(t, err)

	err = schemas.Validate(schemas.EntityDossier, raw)
	var verr *schemas.Error
	require.ErrorAs(t, err, &verr)
	require.Len(t, verr.Violations, schemas.MaxViolations)
	require.Equal(t, 80, verr.Omitted)
	require.Contains(t, err.Error(), "and 80 more")
	require.LessOrEqual(t, strings.Count(err.Error(), "\n"), schemas.MaxViolations+1)
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return raw
}

func TestValidateMessagesStayOnOneLine(t *testing.T) {
	t.Parallel()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(readFile(t, "entity_dossier.valid.json"), &doc))
	doc["generated_at"] = "yesterday\nprobably " + strings.Repeat("é", 400)
	raw, err := json.Marshal(doc)
	require.NoError(t, err)

	err = schemas.Validate(schemas.EntityDossier, raw)
	var verr *schemas.Error
	require.ErrorAs(t, err, &verr)
	require.Len(t, verr.Violations, 1)
	msg := verr.Violations[0].Message
	require.NotContains(t, msg, "\n")
	require.LessOrEqual(t, len(msg), 310)
	require.True(t, strings.HasSuffix(msg, "..."))
}

func TestValidateEntity(t *testing.T) {
	t.Parallel()
	doc := readFile(t, "entity_dossier.valid.json")
	var head struct {
		EntityID string `json:"entity_id"`
	}
	require.NoError(t, json.Unmarshal(doc, &head))
	require.NoError(t, schemas.ValidateEntity(schemas.EntityDossier, doc, head.EntityID))

	err := schemas.ValidateEntity(schemas.EntityDossier, doc, "someone-else")
	require.EqualError(t, err, `dossier is about entity "`+head.EntityID+`", the lease is for "someone-else"`)

	// A schema violation is reported as such, before the entity is compared.
	err = schemas.ValidateEntity(schemas.EntityDossier, []byte(`{"entity_id": "x"}`), "x")
	require.ErrorContains(t, err, "entity_dossier")
	require.NotContains(t, err.Error(), "the lease is for")
}

// BenchmarkValidate is the per-result cost the agent and the coordinator each pay: one parse,
// the JSON Schema, then the attribution rules on the same decoded document.
func BenchmarkValidate(b *testing.B) {
	raw, err := os.ReadFile("testdata/entity_dossier.valid.json")
	require.NoError(b, err)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := schemas.Validate(schemas.EntityDossier, raw); err != nil {
			b.Fatal(err)
		}
	}
}

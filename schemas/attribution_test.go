package schemas_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/schemas"
)

// mutated returns a testdata dossier changed by mutate, as JSON.
func mutated(t *testing.T, file string, mutate func(d map[string]any)) []byte {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(readFile(t, file), &doc))
	mutate(doc)
	raw, err := json.Marshal(doc)
	require.NoError(t, err)
	return raw
}

func obj(d map[string]any, path ...any) map[string]any {
	var cur any = d
	for _, p := range path {
		switch k := p.(type) {
		case string:
			cur = cur.(map[string]any)[k]
		case int:
			cur = cur.([]any)[k]
		}
	}
	return cur.(map[string]any)
}

func TestAttributionViolations(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		schema string
		file   string
		mutate func(d map[string]any)
		// want maps each expected pointer to a fragment of its message; no
		// other violation may be reported.
		want map[string]string
	}{
		{
			name: "confident section without a source", schema: schemas.EntityDossier, file: "entity_dossier.valid.json",
			mutate: func(d map[string]any) { delete(obj(d, "partnerships"), "source_urls") },
			want:   map[string]string{"/partnerships/source_urls": "confidence 0.85 is not below 0.3"},
		},
		{
			name: "section without its own confidence inherits the dossier's", schema: schemas.POIDossier, file: "poi_dossier.valid.json",
			mutate: func(d map[string]any) { delete(obj(d, "person"), "source_urls") },
			want:   map[string]string{"/person/source_urls": "confidence 0.6"},
		},
		{
			name: "cited url not listed in sources", schema: schemas.LeagueDossier, file: "league_dossier.valid.json",
			mutate: func(d map[string]any) {
				obj(d, "media_deals")["source_urls"] = []any{"https://www.laliga.com/en-GB", "https://elsewhere.example/rights"}
				obj(d, "key_facts", 0)["source_url"] = "https://elsewhere.example/teams"
			},
			want: map[string]string{
				"/media_deals/source_urls/1": `"https://elsewhere.example/rights" is not listed in /sources`,
				"/key_facts/0/source_url":    `"https://elsewhere.example/teams" is not listed in /sources`,
			},
		},
		{
			name: "nested citation in a section item", schema: schemas.POIDossier, file: "poi_dossier.valid.json",
			mutate: func(d map[string]any) {
				obj(d, "relationship_pathways", "pathways", 0)["source_url"] = "https://unlisted.example/"
			},
			want: map[string]string{"/relationship_pathways/pathways/0/source_url": "not listed in /sources"},
		},
		{
			name: "relationship without evidence", schema: schemas.EntityDossier, file: "entity_dossier.valid.json",
			mutate: func(d map[string]any) { delete(obj(d, "relationships", 1), "confidence") },
			want:   map[string]string{"/relationships/1/source_url": "no evidence source but its confidence 0.85"},
		},
		{
			name: "relationship to itself and a repeated one", schema: schemas.LeagueDossier, file: "league_dossier.valid.json",
			mutate: func(d map[string]any) {
				rels := d["relationships"].([]any)
				rels = append(rels, map[string]any{"type": "GOVERNED_BY", "target_id": "gov-rfef", "source_url": "https://www.laliga.com/en-GB"})
				rels = append(rels, map[string]any{"type": "MEMBER_OF", "target_id": "league-la-liga", "source_url": "https://www.laliga.com/en-GB"})
				d["relationships"] = rels
			},
			want: map[string]string{
				"/relationships/1":           "repeats /relationships/0",
				"/relationships/2/target_id": "own entity",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := schemas.Validate(tc.schema, mutated(t, tc.file, tc.mutate))
			var verr *schemas.Error
			require.ErrorAs(t, err, &verr)
			got := map[string]string{}
			for _, v := range verr.Violations {
				got[v.Pointer] = v.Message
			}
			require.Len(t, got, len(tc.want), "violations: %v", got)
			for ptr, frag := range tc.want {
				require.Contains(t, got[ptr], frag, "violation at %s", ptr)
			}
		})
	}
}

func TestAttributionBelowThresholdNeedsNoSource(t *testing.T) {
	t.Parallel()
	doc := mutated(t, "entity_dossier.valid.json", func(d map[string]any) {
		s := obj(d, "partnerships")
		delete(s, "source_urls")
		s["confidence"] = 0.29
	})
	require.NoError(t, schemas.Validate(schemas.EntityDossier, doc))
	// A stricter threshold makes the same section a violation, and a looser
	// one accepts a section the default refuses.
	err := schemas.ValidateWith(schemas.EntityDossier, doc, schemas.Options{AttributionThreshold: 0.2})
	require.ErrorContains(t, err, "/partnerships/source_urls: the section cites no source but its confidence 0.29 is not below 0.2")

	unsourced := mutated(t, "entity_dossier.valid.json", func(d map[string]any) { delete(obj(d, "key_people"), "source_urls") })
	require.Error(t, schemas.Validate(schemas.EntityDossier, unsourced))
	require.NoError(t, schemas.ValidateWith(schemas.EntityDossier, unsourced, schemas.Options{AttributionThreshold: 0.75}))
}

func TestSchemaShapeRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, schema, file string
		mutate             func(d map[string]any)
		want               string
	}{
		{"source without title", schemas.EntityDossier, "entity_dossier.valid.json",
			func(d map[string]any) { delete(obj(d, "sources", 0), "title") }, "/sources/0: missing property 'title'"},
		{"source without retrieval time", schemas.LeagueDossier, "league_dossier.valid.json",
			func(d map[string]any) { delete(obj(d, "sources", 0), "retrieved_at") }, "/sources/0: missing property 'retrieved_at'"},
		{"relationship without any target", schemas.EntityDossier, "entity_dossier.valid.json",
			func(d map[string]any) { delete(obj(d, "relationships", 1), "target_name") }, "/relationships/1: missing property 'target_id'"},
		{"person relationship of an organisation's type", schemas.POIDossier, "poi_dossier.valid.json",
			func(d map[string]any) { obj(d, "relationships", 0)["type"] = "PLAYS_AT" }, "/relationships/0/type:"},
		{"organisation relationship of a person's type", schemas.EntityDossier, "entity_dossier.valid.json",
			func(d map[string]any) { obj(d, "relationships", 0)["type"] = "WORKS_FOR" }, "/relationships/0/type:"},
		{"section without confidence", schemas.POIDossier, "poi_dossier.valid.json",
			func(d map[string]any) { delete(obj(d, "engagement_strategy"), "confidence") }, "/engagement_strategy: missing property 'confidence'"},
		{"section confidence above one", schemas.LeagueDossier, "league_dossier.valid.json",
			func(d map[string]any) { obj(d, "governance")["confidence"] = 1.2 }, "/governance/confidence:"},
		{"unknown field in a section", schemas.EntityDossier, "entity_dossier.valid.json",
			func(d map[string]any) { obj(d, "partnerships")["sponsors"] = []any{} }, "'sponsors'"},
		{"too many citations", schemas.EntityDossier, "entity_dossier.valid.json",
			func(d map[string]any) {
				urls := make([]any, 51)
				for i := range urls {
					urls[i] = "https://fcbayern.com/" + string(rune('a'+i%26)) + string(rune('a'+i/26))
				}
				obj(d, "partnerships")["source_urls"] = urls
			}, "/partnerships/source_urls: maxItems"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := schemas.Validate(tc.schema, mutated(t, tc.file, tc.mutate))
			require.ErrorContains(t, err, tc.want)
		})
	}
}

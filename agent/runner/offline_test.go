package runner

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
	"github.com/sportsintel/enrich/schemas"
)

var offlineNow = time.Date(2025, 3, 1, 12, 30, 0, 0, time.FixedZone("CET", 3600))

func TestOfflineDossierValid(t *testing.T) {
	t.Parallel()
	entities := map[string][]*enrichv1.Entity{
		schemas.EntityDossier: {
			{Id: "club-fc-bayern-munchen", Type: "Club", Name: "FC Bayern München", Priority: enrichv1.Priority_PRIORITY_HIGH,
				Attributes: map[string]string{"country": "Germany", "city": "Munich", "founded": "1900", "sport": "Football",
					"league_id": "league-bundesliga", "league": "Bundesliga", "venue_id": "venue-allianz-arena",
					"capacity": "75,024", "website": "https://fcbayern.com"}},
			{Id: "venue-estadio", Type: "Venue", Name: `Estadio "El Gigante" & Co`,
				Attributes: map[string]string{"capacity": "lots", "website": "not a url", "founded": strings.Repeat("9", 100)}},
			{Id: "partner-x", Type: "Partner", Name: "", Attributes: map[string]string{"___": "odd key", "empty": " "}},
		},
		schemas.POIDossier: {
			{Id: "person-cco-fenerbahce", Type: "Executive", Name: "Chief Commercial Officer, Fenerbahçe SK",
				Attributes: map[string]string{"role": "Chief Commercial Officer", "organisation_id": "club-fenerbahce",
					"organisation": "Fenerbahçe SK", "linkedin_url": "https://www.linkedin.com/in/example"}},
			{Id: "person-x", Type: "DecisionMaker", Name: "Ana \"La Jefa\" Pérez\n<script>", SourceLine: 7},
		},
		schemas.LeagueDossier: {
			{Id: "league-la-liga", Type: "League", Name: "LaLiga EA Sports",
				Attributes: map[string]string{"tier": "1", "teams": "20", "governing_body_id": "gov-rfef",
					"governing_body": "Real Federación Española de Fútbol", "country": "Spain"}},
			{Id: "comp-x", Type: "Competition", Name: strings.Repeat("Ω", 2000), Attributes: map[string]string{"tier": "0"}},
		},
	}
	for schema, list := range entities {
		for _, e := range list {
			t.Run(schema+"/"+e.GetId(), func(t *testing.T) {
				t.Parallel()
				out, err := OfflineDossier(e, "instance", schema, offlineNow)
				require.NoError(t, err)
				require.NoError(t, schemas.Validate(schema, out))

				var doc map[string]any
				require.NoError(t, json.Unmarshal(out, &doc))
				require.Equal(t, e.GetId(), doc["entity_id"])
				require.Equal(t, "offline", doc["mode"])
				require.EqualValues(t, 0, doc["confidence"])
				require.Empty(t, doc["sources"])
				require.Equal(t, "2025-03-01T11:30:00Z", doc["generated_at"])
				require.Contains(t, doc["summary"], "Generated offline from the source record only")
			})
		}
	}
}

func TestOfflineDossierMapsAttributes(t *testing.T) {
	t.Parallel()
	e := &enrichv1.Entity{Id: "club-fc-bayern-munchen", Type: "Club", Name: "FC Bayern München",
		Attributes: map[string]string{"sport": "Football", "country": "Germany", "league_id": "league-bundesliga",
			"league": "Bundesliga", "venue_id": "venue-allianz-arena", "capacity": "75,024", "website": "ftp://x"}}
	out, err := OfflineDossier(e, "entities", schemas.EntityDossier, offlineNow)
	require.NoError(t, err)

	var doc struct {
		KeyFacts      []map[string]string `json:"key_facts"`
		Relationships []map[string]string `json:"relationships"`
		Organisation  map[string]any      `json:"organisation"`
	}
	require.NoError(t, json.Unmarshal(out, &doc))
	labels := make([]string, 0, len(doc.KeyFacts))
	for _, f := range doc.KeyFacts {
		labels = append(labels, f["label"])
	}
	require.Equal(t, []string{"Capacity", "Country", "League", "League id", "Sport", "Venue id", "Website"}, labels)
	require.Equal(t, []map[string]string{
		{"type": "COMPETES_IN", "target_id": "league-bundesliga", "target_name": "Bundesliga"},
		{"type": "PLAYS_AT", "target_id": "venue-allianz-arena", "target_name": "venue-allianz-arena"},
	}, doc.Relationships)
	require.Equal(t, map[string]any{"sport": "Football", "country": "Germany", "league": "Bundesliga", "capacity": float64(75024)}, doc.Organisation)
}

func TestOfflineDossierPersonWorksFor(t *testing.T) {
	t.Parallel()
	e := &enrichv1.Entity{Id: "person-1", Type: "Person", Name: "Head of Partnerships, Example FC",
		Attributes: map[string]string{"organisation_id": "club-example", "role": "Head of Partnerships"}}
	out, err := OfflineDossier(e, "persons", schemas.POIDossier, offlineNow)
	require.NoError(t, err)
	require.Contains(t, string(out), `"type": "WORKS_FOR"`)
	require.Contains(t, string(out), `"current_role": "Head of Partnerships"`)
}

func TestOfflineDossierErrors(t *testing.T) {
	t.Parallel()
	_, err := OfflineDossier(nil, "entities", schemas.EntityDossier, offlineNow)
	require.ErrorContains(t, err, "no entity")
	_, err = OfflineDossier(&enrichv1.Entity{Type: "Club"}, "entities", schemas.EntityDossier, offlineNow)
	require.ErrorContains(t, err, "no id")
	_, err = OfflineDossier(&enrichv1.Entity{Id: "x"}, "entities", "club_dossier", offlineNow)
	require.ErrorContains(t, err, `"club_dossier"`)
}

// Every shipped example must produce a valid offline dossier, so a fresh
// checkout can run the whole pipeline without credentials.
func TestOfflineDossierExamples(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../examples/entities.jsonl")
	require.NoError(t, err)
	schemaFor := map[string]string{
		"Club": schemas.EntityDossier, "Organization": schemas.EntityDossier, "Venue": schemas.EntityDossier, "Partner": schemas.EntityDossier,
		"Person": schemas.POIDossier, "DecisionMaker": schemas.POIDossier, "Executive": schemas.POIDossier,
		"League": schemas.LeagueDossier, "Competition": schemas.LeagueDossier, "GoverningBody": schemas.LeagueDossier,
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	require.Len(t, lines, 90)
	for i, line := range lines {
		var rec map[string]string
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "line %d", i+1)
		e := &enrichv1.Entity{Id: rec["id"], Type: rec["type"], Name: rec["name"], SourceLine: int32(i + 1), Attributes: map[string]string{}}
		for k, v := range rec {
			switch k {
			case "id", "type", "name", "priority":
			default:
				e.Attributes[k] = v
			}
		}
		schema, ok := schemaFor[e.GetType()]
		require.True(t, ok, "line %d: type %q", i+1, e.GetType())
		_, err := OfflineDossier(e, "examples", schema, offlineNow)
		require.NoError(t, err, "line %d", i+1)
	}
}

package dossier_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/coordinator/dossier"
)

const research = `{
  "entity_id": "club-fc-bayern-munchen",
  "entity_type": "Club",
  "name": "FC Bayern München",
  "instance_type": "entities",
  "mode": "research",
  "summary": "First paragraph.\n\n# Not a heading\nSecond paragraph with <b>html</b> and [a](javascript:alert(1)).",
  "confidence": 0.85,
  "key_facts": [
    {"label": "Founded", "value": "1900", "source_url": "https://fcbayern.com/en/club/history"},
    {"label": "Motto | slogan", "value": "Mia san mia\nWe are who we are"}
  ],
  "relationships": [
    {"type": "COMPETES_IN", "target_id": "league-bundesliga", "target_name": "Bundesliga", "confidence": 0.99}
  ],
  "sources": [
    {"url": "https://fcbayern.com/en/club/history", "title": "History *official*", "publisher": "FC Bayern", "retrieved_at": "2025-01-10T09:30:00Z"},
    {"url": "javascript:alert(1)", "title": "Bad link"}
  ],
  "generated_at": "2025-01-10T09:45:00Z",
  "organisation": {
    "country": "Germany",
    "capacity": 75024,
    "website": "https://fcbayern.com",
    "revenue_estimate": {"amount": 854000000, "currency": "EUR", "year": 2023},
    "commercial_partners": [{"name": "Deutsche Telekom", "category": "shirt sponsor"}, {"name": "Adidas"}],
    "commercial_opportunities": ["US expansion", "Women's team growth"]
  },
  "extra": {"nickname": "Die Roten"}
}`

func TestMarkdownResearch(t *testing.T) {
	t.Parallel()
	out, err := dossier.Markdown([]byte(research))
	require.NoError(t, err)
	md := string(out)

	for _, want := range []string{
		"# FC Bayern München (Club)\n",
		"**Mode:** research · **Confidence:** 0.85 · **Generated:** 2025-01-10T09:45:00Z",
		"## Summary\n\nFirst paragraph.\n\n\\# Not a heading Second paragraph with \\<b\\>html\\</b\\> and \\[a\\](javascript:alert(1)).",
		"## Key facts\n\n| Fact | Value | Source |\n|---|---|---|\n",
		"| Founded | 1900 | [link](https://fcbayern.com/en/club/history) |",
		"| Motto \\| slogan | Mia san mia<br>We are who we are |  |",
		"## Organisation\n\n",
		"- **Capacity:** 75024\n",
		"- **Country:** Germany\n",
		"- **Website:** <https://fcbayern.com>\n",
		"- **Revenue estimate:**\n  - **Amount:** 854000000\n  - **Currency:** EUR\n",
		"- **Commercial partners:**\n  - **Category:** shirt sponsor; **Name:** Deutsche Telekom\n  - **Name:** Adidas\n",
		"- **Commercial opportunities:**\n  - US expansion\n  - Women's team growth\n",
		"## Relationships\n\n| Type | Target | Target id | Confidence | Source |",
		"| COMPETES\\_IN | Bundesliga | league-bundesliga | 0.99 |  |",
		"## Sources\n\n1. [History \\*official\\*](https://fcbayern.com/en/club/history) — FC Bayern, retrieved 2025-01-10T09:30:00Z\n2. Bad link\n",
		"## Additional data\n\n- **Nickname:** Die Roten\n",
	} {
		require.Contains(t, md, want)
	}
	require.NotContains(t, md, "Offline dossier")
	require.NotContains(t, md, "(javascript:alert(1))\n")
	require.NotContains(t, md, "\n# Not a heading")
	require.Less(t, strings.Index(md, "## Organisation"), strings.Index(md, "## Relationships"))
	require.Less(t, strings.Index(md, "## Sources"), strings.Index(md, "## Additional data"))
}

func TestMarkdownOffline(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../schemas/testdata/offline.valid.json")
	require.NoError(t, err)
	out, err := dossier.Markdown(raw)
	require.NoError(t, err)
	md := string(out)
	require.Contains(t, md, `# Example "Quoted" FC (Club)`)
	require.Contains(t, md, "> **Offline dossier: this is not research.**")
	require.Contains(t, md, "## Relationships\n\nNone recorded.")
	require.Contains(t, md, "## Sources\n\nNone.")
	require.NotContains(t, md, "## Key facts")
}

func TestMarkdownPersonSection(t *testing.T) {
	t.Parallel()
	doc := `{"entity_id":"p","entity_type":"Executive","name":"- CCO","mode":"research","confidence":0.5,
	"generated_at":"` + time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339) + `",
	"person":{"career":[{"role":"Head of Partnerships","organisation":"Example Media","from":"2015","to":"2019"}],
	"influence_areas":["1. sponsorship"]}}`
	out, err := dossier.Markdown([]byte(doc))
	require.NoError(t, err)
	md := string(out)
	require.Contains(t, md, "# - CCO (Executive)\n")
	require.Contains(t, md, "## Person\n\n- **Career:**\n  - **From:** 2015; **Organisation:** Example Media; **Role:** Head of Partnerships; **To:** 2019\n")
	require.Contains(t, md, "  - 1\\. sponsorship\n")
}

func TestMarkdownRejectsNonObject(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{"", "[]", "null", "not json"} {
		_, err := dossier.Markdown([]byte(doc))
		require.Error(t, err, "doc %q", doc)
	}
}

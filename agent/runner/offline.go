package runner

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
	"github.com/sportsintel/enrich/schemas"
)

// OfflineDossier builds a dossier for e from the source record alone, with no
// network access. It is marked "mode": "offline" with zero confidence and no
// sources, so nobody mistakes it for research; it lets the whole pipeline run
// on a machine with no credentials and in tests. The result is validated
// against schema before it is returned.
func OfflineDossier(e *enrichv1.Entity, instanceType, schema string, now time.Time) ([]byte, error) {
	if e == nil {
		return nil, errors.New("offline dossier: no entity")
	}
	if e.GetId() == "" {
		return nil, errors.New("offline dossier: entity has no id")
	}
	section, ok := offlineSections[schema]
	if !ok {
		return nil, fmt.Errorf("offline dossier: no offline mapping for schema %q", schema)
	}
	attrs := e.GetAttributes()
	name := cmp.Or(strings.TrimSpace(e.GetName()), e.GetId())
	entityType := cmp.Or(e.GetType(), "Unknown")

	d := offlineDoc{
		EntityID:      e.GetId(),
		EntityType:    offlineClip(entityType, 128),
		Name:          offlineClip(name, 1024),
		InstanceType:  offlineClip(cmp.Or(instanceType, "unknown"), 64),
		Mode:          "offline",
		Summary:       offlineSummary(entityType, name),
		Confidence:    0,
		KeyFacts:      offlineFacts(attrs),
		Relationships: offlineRelationships(attrs, schema == schemas.POIDossier),
		Sources:       []struct{}{},
		GeneratedAt:   now.UTC().Format(time.RFC3339),
		Extra:         map[string]any{"generator": "offline"},
	}
	if obj := section.fill(attrs); len(obj) > 0 {
		switch schema {
		case schemas.EntityDossier:
			d.Organisation = obj
		case schemas.POIDossier:
			d.Person = obj
		case schemas.LeagueDossier:
			d.League = obj
		}
	}
	if p := e.GetPriority(); p != enrichv1.Priority_PRIORITY_UNSPECIFIED {
		d.Extra["priority"] = strings.ToLower(strings.TrimPrefix(p.String(), "PRIORITY_"))
	}
	if l := e.GetSourceLine(); l > 0 {
		d.Extra["source_line"] = l
	}

	out, err := d.marshal()
	if err != nil {
		return nil, fmt.Errorf("offline dossier: %w", err)
	}
	if err := schemas.Validate(schema, out); err != nil {
		return nil, fmt.Errorf("offline dossier for %q: %w", e.GetId(), err)
	}
	return out, nil
}

type offlineDoc struct {
	EntityID      string         `json:"entity_id"`
	EntityType    string         `json:"entity_type"`
	Name          string         `json:"name"`
	InstanceType  string         `json:"instance_type"`
	Mode          string         `json:"mode"`
	Summary       string         `json:"summary"`
	Confidence    float64        `json:"confidence"`
	KeyFacts      []offlineFact  `json:"key_facts"`
	Relationships []offlineRel   `json:"relationships"`
	Sources       []struct{}     `json:"sources"`
	GeneratedAt   string         `json:"generated_at"`
	Organisation  map[string]any `json:"organisation,omitempty"`
	Person        map[string]any `json:"person,omitempty"`
	League        map[string]any `json:"league,omitempty"`
	Extra         map[string]any `json:"extra,omitempty"`
}

type offlineFact struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

type offlineRel struct {
	Type       string `json:"type"`
	TargetID   string `json:"target_id"`
	TargetName string `json:"target_name"`
}

// marshal skips HTML escaping so names with "&" stay readable on disk.
func (d offlineDoc) marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// offlineSummary leads with the disclaimer so clipping a huge name can never
// cut it off.
func offlineSummary(entityType, name string) string {
	return offlineClip(fmt.Sprintf(
		"Generated offline from the source record only: no research was done, no sources were "+
			"consulted and nothing here has been verified. The record describes the %s \"%s\"; "+
			"its fields are listed as key facts.",
		entityType, name), 8000)
}

func offlineFacts(attrs map[string]string) []offlineFact {
	facts := []offlineFact{}
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		v := strings.TrimSpace(attrs[k])
		if v == "" || strings.TrimSpace(k) == "" {
			continue
		}
		facts = append(facts, offlineFact{Label: offlineClip(offlineLabel(k), 256), Value: offlineClip(v, 4096)})
		if len(facts) == 200 {
			break
		}
	}
	return facts
}

// offlineLink says which attribute holds a related entity's id, which one
// may hold its name, and the relationship type for persons and for others.
type offlineLink struct {
	idKey, nameKey    string
	person, otherwise string
}

var offlineLinks = []offlineLink{
	{"league_id", "league", "AFFILIATED_WITH", "COMPETES_IN"},
	{"competition_id", "competition", "AFFILIATED_WITH", "COMPETES_IN"},
	{"organisation_id", "organisation", "WORKS_FOR", "AFFILIATED_WITH"},
	{"organization_id", "organization", "WORKS_FOR", "AFFILIATED_WITH"},
	{"club_id", "club", "WORKS_FOR", "AFFILIATED_WITH"},
	{"governing_body_id", "governing_body", "AFFILIATED_WITH", "GOVERNED_BY"},
	{"federation_id", "federation", "MEMBER_OF", "MEMBER_OF"},
	{"venue_id", "venue", "AFFILIATED_WITH", "PLAYS_AT"},
	{"partner_id", "partner", "PARTNER_OF", "PARTNER_OF"},
	{"owner_id", "owner", "AFFILIATED_WITH", "AFFILIATED_WITH"},
	{"parent_id", "parent", "AFFILIATED_WITH", "AFFILIATED_WITH"},
}

func offlineRelationships(attrs map[string]string, person bool) []offlineRel {
	rels := []offlineRel{}
	for _, l := range offlineLinks {
		id := strings.TrimSpace(attrs[l.idKey])
		if id == "" {
			continue
		}
		typ := l.otherwise
		if person {
			typ = l.person
		}
		target := cmp.Or(strings.TrimSpace(attrs[l.nameKey]), id)
		rels = append(rels, offlineRel{Type: typ, TargetID: offlineClip(id, 512), TargetName: offlineClip(target, 1024)})
	}
	return rels
}

type offlineKind int

const (
	offlineKindString offlineKind = iota
	offlineKindInt
	offlineKindURI
)

// offlineField maps source attributes (first non-empty wins) onto one field of
// the type-specific object; max and min mirror the schema's limits.
type offlineField struct {
	name string
	keys []string
	kind offlineKind
	max  int // maxLength for strings
	min  int // minimum for integers
}

type offlineSection struct {
	fields []offlineField
}

var offlineSections = map[string]offlineSection{
	schemas.EntityDossier: {fields: []offlineField{
		{name: "legal_name", keys: []string{"legal_name"}, max: 1024},
		{name: "short_name", keys: []string{"short_name", "abbreviation"}, max: 256},
		{name: "category", keys: []string{"category", "kind"}, max: 256},
		{name: "founded", keys: []string{"founded", "established", "opened"}, max: 32},
		{name: "headquarters", keys: []string{"headquarters", "address"}, max: 1024},
		{name: "city", keys: []string{"city"}, max: 256},
		{name: "country", keys: []string{"country"}, max: 128},
		{name: "website", keys: []string{"website", "url"}, kind: offlineKindURI},
		{name: "sport", keys: []string{"sport"}, max: 128},
		{name: "league", keys: []string{"league", "competition"}, max: 512},
		{name: "home_venue", keys: []string{"home_venue", "venue", "stadium"}, max: 512},
		{name: "capacity", keys: []string{"capacity"}, kind: offlineKindInt},
		{name: "ownership", keys: []string{"ownership", "owner"}, max: 2048},
		{name: "employees", keys: []string{"employees"}, kind: offlineKindInt},
	}},
	schemas.POIDossier: {fields: []offlineField{
		{name: "current_role", keys: []string{"current_role", "role", "title"}, max: 512},
		{name: "organisation", keys: []string{"organisation", "organization", "club", "company"}, max: 1024},
		{name: "organisation_id", keys: []string{"organisation_id", "organization_id", "club_id"}, max: 512},
		{name: "department", keys: []string{"department", "function"}, max: 256},
		{name: "seniority", keys: []string{"seniority"}, max: 64},
		{name: "location", keys: []string{"location", "city"}, max: 512},
		{name: "linkedin_url", keys: []string{"linkedin_url", "linkedin"}, kind: offlineKindURI},
	}},
	schemas.LeagueDossier: {fields: []offlineField{
		{name: "sport", keys: []string{"sport"}, max: 128},
		{name: "region", keys: []string{"region"}, max: 256},
		{name: "country", keys: []string{"country"}, max: 128},
		{name: "tier", keys: []string{"tier", "level"}, kind: offlineKindInt, min: 1},
		{name: "teams_count", keys: []string{"teams_count", "teams"}, kind: offlineKindInt},
		{name: "governing_body", keys: []string{"governing_body"}, max: 512},
		{name: "founded", keys: []string{"founded", "established", "opened"}, max: 32},
		{name: "website", keys: []string{"website", "url"}, kind: offlineKindURI},
		{name: "format", keys: []string{"format"}, max: 2048},
		{name: "season", keys: []string{"season"}, max: 32},
		{name: "current_champion", keys: []string{"current_champion", "champion"}, max: 512},
	}},
}

// fill keeps only values that already satisfy the schema: an offline dossier
// reports what the record says and must not fail on a sloppy column.
func (s offlineSection) fill(attrs map[string]string) map[string]any {
	obj := map[string]any{}
	for _, f := range s.fields {
		for _, k := range f.keys {
			v := strings.TrimSpace(attrs[k])
			if v == "" {
				continue
			}
			switch f.kind {
			case offlineKindInt:
				n, err := strconv.ParseInt(strings.ReplaceAll(v, ",", ""), 10, 64)
				if err != nil || n < int64(f.min) {
					continue
				}
				obj[f.name] = n
			case offlineKindURI:
				u, err := url.Parse(v)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(v) > 2048 {
					continue
				}
				obj[f.name] = v
			default:
				obj[f.name] = offlineClip(v, f.max)
			}
			break
		}
	}
	return obj
}

// offlineLabel turns "league_id" into "League id".
func offlineLabel(key string) string {
	s := strings.Join(strings.Fields(strings.ReplaceAll(key, "_", " ")), " ")
	if s == "" {
		return key
	}
	r, size := utf8.DecodeRuneInString(s)
	return strings.ToUpper(string(r)) + s[size:]
}

// offlineClip shortens s to at most n runes, as JSON Schema counts length in code
// points.
func offlineClip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

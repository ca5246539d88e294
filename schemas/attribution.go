package schemas

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// DefaultAttributionThreshold is the confidence at and above which a claim
// section must cite a source. Below it a section may stand unsourced: the
// model marks it as a lead, not a finding.
const DefaultAttributionThreshold = 0.3

// Options tunes the checks that JSON Schema cannot express.
type Options struct {
	// AttributionThreshold replaces DefaultAttributionThreshold when it is
	// more than 0.
	AttributionThreshold float64
}

func (o Options) threshold() float64 {
	if o.AttributionThreshold > 0 {
		return o.AttributionThreshold
	}
	return DefaultAttributionThreshold
}

// claimSections lists, per schema, the top-level objects that carry claims:
// those whose schema declares both "confidence" and "source_urls". Reading
// it from the schema keeps one source of truth when a section is added.
func claimSections(raw []byte) ([]string, error) {
	var s struct {
		Properties map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	var out []string
	for name, p := range s.Properties {
		_, conf := p.Properties["confidence"]
		_, urls := p.Properties["source_urls"]
		if conf && urls {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// dossier is the part of a schema-valid document the cross-field checks
// read. Numbers are json.Number-free floats: the schema has already bounded
// them.
type dossier struct {
	EntityID      string  `json:"entity_id"`
	Confidence    float64 `json:"confidence"`
	Relationships []struct {
		Type       string   `json:"type"`
		TargetID   string   `json:"target_id"`
		TargetName string   `json:"target_name"`
		Confidence *float64 `json:"confidence"`
		SourceURL  string   `json:"source_url"`
	} `json:"relationships"`
	Sources []struct {
		URL string `json:"url"`
	} `json:"sources"`
}

type section struct {
	Confidence *float64 `json:"confidence"`
	SourceURLs []string `json:"source_urls"`
}

// attribution checks what a schema cannot: every claim section and every
// relationship at or above the threshold cites a source, every cited URL is
// listed in /sources, and relationships neither point at the entity itself
// nor repeat. doc must already be valid against the schema.
func attribution(sections []string, doc []byte, opts Options) []Violation {
	var d dossier
	var top map[string]json.RawMessage
	if json.Unmarshal(doc, &d) != nil || json.Unmarshal(doc, &top) != nil {
		return nil // unreachable after schema validation; the schema error wins
	}
	limit := opts.threshold()
	var out []Violation
	add := func(ptr, format string, args ...any) {
		out = append(out, Violation{Pointer: ptr, Message: fmt.Sprintf(format, args...)})
	}
	listed := make(map[string]bool, len(d.Sources))
	for _, s := range d.Sources {
		listed[s.URL] = true
	}

	for _, name := range sections {
		raw, ok := top[name]
		if !ok {
			continue
		}
		var s section
		if json.Unmarshal(raw, &s) != nil {
			continue
		}
		conf := d.Confidence
		if s.Confidence != nil {
			conf = *s.Confidence
		}
		ptr := "/" + name
		if len(s.SourceURLs) == 0 && conf >= limit {
			add(ptr+"/source_urls", "the section cites no source but its confidence %s is not below %s: cite a source or lower the confidence",
				num(conf), num(limit))
		}
	}

	// Every cited URL, wherever it appears, must be one of the listed
	// sources, so a reader can follow each claim to a page with a title
	// and a retrieval time.
	var v any
	_ = json.Unmarshal(doc, &v)
	walkCitations(v, "", func(ptr, url string) {
		if !listed[url] {
			add(ptr, "%s is not listed in /sources", clip(url))
		}
	})

	seen := map[string]int{}
	for i, r := range d.Relationships {
		ptr := "/relationships/" + strconv.Itoa(i)
		if r.TargetID != "" && r.TargetID == d.EntityID {
			add(ptr+"/target_id", "a relationship cannot point at the dossier's own entity")
		}
		conf := d.Confidence
		if r.Confidence != nil {
			conf = *r.Confidence
		}
		if r.SourceURL == "" && conf >= limit {
			add(ptr+"/source_url", "the relationship names no evidence source but its confidence %s is not below %s", num(conf), num(limit))
		}
		key := r.Type + "\x00" + strings.ToLower(strings.TrimSpace(r.TargetID))
		if r.TargetID == "" {
			key = r.Type + "\x00name:" + strings.ToLower(strings.TrimSpace(r.TargetName))
		}
		if j, dup := seen[key]; dup {
			add(ptr, "repeats /relationships/%d (same type and target)", j)
			continue
		}
		seen[key] = i
	}
	return out
}

// walkCitations calls fn for every "source_url" string and every item of a
// "source_urls" array, outside /sources itself.
func walkCitations(v any, ptr string, fn func(ptr, url string)) {
	switch t := v.(type) {
	case map[string]any:
		for k, child := range t {
			p := ptr + "/" + escapeToken(k)
			switch {
			case ptr == "" && k == "sources":
				continue
			case k == "source_url":
				if s, ok := child.(string); ok && s != "" {
					fn(p, s)
				}
			case k == "source_urls":
				if items, ok := child.([]any); ok {
					for i, it := range items {
						if s, ok := it.(string); ok {
							fn(p+"/"+strconv.Itoa(i), s)
						}
					}
				}
			default:
				walkCitations(child, p, fn)
			}
		}
	case []any:
		for i, child := range t {
			walkCitations(child, ptr+"/"+strconv.Itoa(i), fn)
		}
	}
}

func escapeToken(t string) string {
	return strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1")
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func clip(s string) string {
	if len(s) <= 200 {
		return strconv.Quote(s)
	}
	return strconv.Quote(oneLine(s[:200]) + "...")
}

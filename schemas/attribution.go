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

// attribution checks what a schema cannot: every claim section and every
// relationship at or above the threshold cites a source, every cited URL is
// listed in /sources, and relationships neither point at the entity itself
// nor repeat. doc is the document as decoded for the schema validator (numbers
// as json.Number) and must already be valid against the schema: reading that
// one decoded value, rather than parsing the bytes again per check, is what
// keeps validation cheap on the agent and the coordinator alike.
func attribution(sections []string, doc any, opts Options) []Violation {
	top, ok := doc.(map[string]any)
	if !ok {
		return nil // unreachable after schema validation; the schema error wins
	}
	limit := opts.threshold()
	var out []Violation
	add := func(ptr, format string, args ...any) {
		out = append(out, Violation{Pointer: ptr, Message: fmt.Sprintf(format, args...)})
	}
	entityID, _ := top["entity_id"].(string)
	docConfidence, _ := number(top["confidence"])
	listed := map[string]bool{}
	sources, _ := top["sources"].([]any)
	for _, s := range sources {
		if src, ok := s.(map[string]any); ok {
			if url, ok := src["url"].(string); ok {
				listed[url] = true
			}
		}
	}

	for _, name := range sections {
		raw, present := top[name]
		if !present {
			continue
		}
		sec, isObject := raw.(map[string]any)
		if !isObject && raw != nil {
			continue
		}
		conf := docConfidence
		if c, ok := number(sec["confidence"]); ok {
			conf = c
		}
		urls, _ := sec["source_urls"].([]any)
		ptr := "/" + name
		if len(urls) == 0 && conf >= limit {
			add(ptr+"/source_urls", "the section cites no source but its confidence %s is not below %s: cite a source or lower the confidence",
				num(conf), num(limit))
		}
	}

	// Every cited URL, wherever it appears, must be one of the listed
	// sources, so a reader can follow each claim to a page with a title
	// and a retrieval time.
	walkCitations(doc, "", func(ptr, url string) {
		if !listed[url] {
			add(ptr, "%s is not listed in /sources", clip(url))
		}
	})

	seen := map[string]int{}
	relationships, _ := top["relationships"].([]any)
	for i, item := range relationships {
		r, ok := item.(map[string]any)
		if !ok {
			continue
		}
		ptr := "/relationships/" + strconv.Itoa(i)
		typ, _ := r["type"].(string)
		targetID, _ := r["target_id"].(string)
		targetName, _ := r["target_name"].(string)
		sourceURL, _ := r["source_url"].(string)
		if targetID != "" && targetID == entityID {
			add(ptr+"/target_id", "a relationship cannot point at the dossier's own entity")
		}
		conf := docConfidence
		if c, ok := number(r["confidence"]); ok {
			conf = c
		}
		if sourceURL == "" && conf >= limit {
			add(ptr+"/source_url", "the relationship names no evidence source but its confidence %s is not below %s", num(conf), num(limit))
		}
		key := typ + "\x00" + strings.ToLower(strings.TrimSpace(targetID))
		if targetID == "" {
			key = typ + "\x00name:" + strings.ToLower(strings.TrimSpace(targetName))
		}
		if j, dup := seen[key]; dup {
			add(ptr, "repeats /relationships/%d (same type and target)", j)
			continue
		}
		seen[key] = i
	}
	return out
}

// number reads a JSON number decoded with UseNumber (or a float64).
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float64:
		return n, true
	}
	return 0, false
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

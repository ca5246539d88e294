// Package dossier turns stored dossier JSON into the pages operators read.
package dossier

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// commonFields are rendered in fixed places; every other top-level object
// (the type-specific one, extra, fields from a newer schema) gets a generic
// section of its own.
var commonFields = map[string]bool{
	"entity_id": true, "entity_type": true, "name": true, "instance_type": true, "mode": true,
	"summary": true, "confidence": true, "key_facts": true, "relationships": true, "sources": true,
	"generated_at": true, "extra": true,
}

// sectionTitles names the type-specific objects; they come first, then any
// unknown object alphabetically, then extra.
var sectionTitles = map[string]string{
	"organisation": "Organisation",
	"person":       "Person",
	"league":       "League",
}

// Markdown renders a dossier (any of the dossier schemas) as a markdown page.
// Every value from the dossier is escaped, so text written by the model or
// taken from a web page cannot add headings, links or HTML.
func Markdown(doc []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var d map[string]any
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("render dossier: not a JSON object: %w", err)
	}
	if d == nil {
		return nil, errors.New("render dossier: not a JSON object")
	}

	var b strings.Builder
	name := firstNonBlank(str(d["name"]), str(d["entity_id"]), "Untitled entity")
	fmt.Fprintf(&b, "# %s", inline(name))
	if t := str(d["entity_type"]); t != "" {
		fmt.Fprintf(&b, " (%s)", inline(t))
	}
	b.WriteString("\n\n")

	var meta []string
	for _, f := range []struct{ label, key string }{
		{"Mode", "mode"}, {"Confidence", "confidence"}, {"Generated", "generated_at"},
		{"Entity id", "entity_id"}, {"Instance type", "instance_type"},
	} {
		if v := scalar(d[f.key]); v != "" {
			meta = append(meta, fmt.Sprintf("**%s:** %s", f.label, inline(v)))
		}
	}
	if len(meta) > 0 {
		b.WriteString(strings.Join(meta, " · "))
		b.WriteString("\n\n")
	}
	if str(d["mode"]) == "offline" {
		b.WriteString("> **Offline dossier: this is not research.** It was generated from the source record only; " +
			"no sources were consulted and nothing on this page has been verified.\n\n")
	}

	if s := str(d["summary"]); s != "" {
		b.WriteString("## Summary\n\n")
		b.WriteString(block(s))
		b.WriteString("\n\n")
	}

	writeKeyFacts(&b, d["key_facts"])

	keys := make([]string, 0, len(d))
	for k := range d {
		if !commonFields[k] {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		_, ka := sectionTitles[a]
		_, kb := sectionTitles[b]
		switch {
		case ka && !kb:
			return -1
		case kb && !ka:
			return 1
		}
		return strings.Compare(a, b)
	})
	for _, k := range keys {
		writeSection(&b, firstNonBlank(sectionTitles[k], label(k)), d[k])
	}

	writeRelationships(&b, d["relationships"])
	writeSources(&b, d["sources"])
	writeSection(&b, "Additional data", d["extra"])

	return []byte(strings.TrimRight(b.String(), "\n") + "\n"), nil
}

func writeKeyFacts(b *strings.Builder, v any) {
	facts := objects(v)
	if len(facts) == 0 {
		return
	}
	b.WriteString("## Key facts\n\n| Fact | Value | Source |\n|---|---|---|\n")
	for _, f := range facts {
		fmt.Fprintf(b, "| %s | %s | %s |\n", cell(scalar(f["label"])), cell(scalar(f["value"])), sourceLink(str(f["source_url"])))
	}
	b.WriteString("\n")
}

func writeRelationships(b *strings.Builder, v any) {
	rels := objects(v)
	b.WriteString("## Relationships\n\n")
	if len(rels) == 0 {
		b.WriteString("None recorded.\n\n")
		return
	}
	b.WriteString("| Type | Target | Target id | Confidence | Source |\n|---|---|---|---|---|\n")
	for _, r := range rels {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n",
			cell(scalar(r["type"])), cell(scalar(r["target_name"])), cell(scalar(r["target_id"])),
			cell(scalar(r["confidence"])), sourceLink(str(r["source_url"])))
	}
	b.WriteString("\n")
}

func writeSources(b *strings.Builder, v any) {
	sources := objects(v)
	b.WriteString("## Sources\n\n")
	if len(sources) == 0 {
		b.WriteString("None.\n\n")
		return
	}
	for i, s := range sources {
		u := safeURL(str(s["url"]))
		title := firstNonBlank(str(s["title"]), str(s["url"]))
		line := inline(title)
		if u != "" {
			line = fmt.Sprintf("[%s](%s)", inline(title), u)
		}
		var details []string
		if p := str(s["publisher"]); p != "" {
			details = append(details, inline(p))
		}
		if r := str(s["retrieved_at"]); r != "" {
			details = append(details, "retrieved "+inline(r))
		}
		if len(details) > 0 {
			line += " — " + strings.Join(details, ", ")
		}
		fmt.Fprintf(b, "%d. %s\n", i+1, line)
	}
	b.WriteString("\n")
}

// writeSection renders any JSON value as nested lists with sorted keys, so a
// schema change never needs a change here.
func writeSection(b *strings.Builder, title string, v any) {
	if isEmpty(v) {
		return
	}
	fmt.Fprintf(b, "## %s\n\n", inline(title))
	switch v := v.(type) {
	case map[string]any, []any:
		writeValue(b, v, 0)
	default:
		b.WriteString(inline(scalar(v)))
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

func writeValue(b *strings.Builder, v any, depth int) {
	pad := strings.Repeat("  ", depth)
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			c := v[k]
			if isEmpty(c) {
				continue
			}
			if isScalar(c) {
				fmt.Fprintf(b, "%s- **%s:** %s\n", pad, inline(label(k)), value(c))
				continue
			}
			fmt.Fprintf(b, "%s- **%s:**\n", pad, inline(label(k)))
			writeValue(b, c, depth+1)
		}
	case []any:
		for _, item := range v {
			if isEmpty(item) {
				continue
			}
			obj, ok := item.(map[string]any)
			if !ok {
				if isScalar(item) {
					fmt.Fprintf(b, "%s- %s\n", pad, escapeLineStart(value(item)))
				} else {
					fmt.Fprintf(b, "%s-\n", pad)
					writeValue(b, item, depth+1)
				}
				continue
			}
			// Objects in lists (career steps, partners) read best on one
			// line; only their nested parts get sub-items.
			var parts []string
			var nested []string
			for _, k := range slices.Sorted(maps.Keys(obj)) {
				switch c := obj[k]; {
				case isEmpty(c):
				case isScalar(c):
					parts = append(parts, fmt.Sprintf("**%s:** %s", inline(label(k)), value(c)))
				default:
					nested = append(nested, k)
				}
			}
			fmt.Fprintf(b, "%s- %s\n", pad, strings.Join(parts, "; "))
			for _, k := range nested {
				fmt.Fprintf(b, "%s  - **%s:**\n", pad, inline(label(k)))
				writeValue(b, obj[k], depth+2)
			}
		}
	default:
		fmt.Fprintf(b, "%s- %s\n", pad, escapeLineStart(value(v)))
	}
}

// value renders a scalar, turning web addresses into links.
func value(v any) string {
	s := scalar(v)
	if u := safeURL(s); u != "" && u == s {
		return "<" + u + ">"
	}
	return inline(s)
}

func sourceLink(raw string) string {
	if u := safeURL(raw); u != "" {
		return "[link](" + u + ")"
	}
	return cell(raw)
}

// safeURL returns raw if it is an absolute http(s) address that can sit in
// a markdown link target unchanged, and "" otherwise, so "javascript:" and
// addresses that would end the link early are never rendered as links.
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	if strings.ContainsAny(raw, " \t\r\n<>()[]|\\\"'`") {
		return ""
	}
	return raw
}

// inlineEscaper covers the punctuation that can start inline markup, raw
// HTML or a table cell. "!" and "&" are left alone: images need an escaped
// "[", and entities only ever decode to text.
var inlineEscaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", `*`, `\*`, `_`, `\_`, `[`, `\[`, `]`, `\]`,
	`<`, `\<`, `>`, `\>`, `|`, `\|`, `~`, `\~`,
)

// inline escapes s for use inside a line: newlines become spaces and
// anything that could start markup, a table cell or raw HTML is escaped.
func inline(s string) string {
	s = strings.Join(strings.Fields(sanitize(s)), " ")
	return inlineEscaper.Replace(s)
}

// cell escapes s for a table cell, keeping line breaks visible.
func cell(s string) string {
	lines := strings.Split(strings.ReplaceAll(sanitize(s), "\r\n", "\n"), "\n")
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, inline(l))
		}
	}
	return strings.Join(out, "<br>")
}

// block escapes multi-line text, keeping its paragraphs.
func block(s string) string {
	paras := strings.Split(strings.ReplaceAll(sanitize(s), "\r\n", "\n"), "\n\n")
	out := make([]string, 0, len(paras))
	for _, p := range paras {
		if p = escapeLineStart(inline(p)); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "\n\n")
}

// escapeLineStart stops text that begins a line (a paragraph, a list item's
// content) from turning into a heading, quote, list item or rule.
func escapeLineStart(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '#', '>', '-', '+', '=':
		return `\` + s
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i > 0 && i < len(s) && (s[i] == '.' || s[i] == ')') {
		return s[:i] + `\` + s[i:]
	}
	return s
}

// sanitize drops control characters other than line breaks and repairs
// invalid UTF-8.
func sanitize(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return -1
		}
		return r
	}, s)
}

func label(key string) string {
	s := strings.Join(strings.Fields(strings.ReplaceAll(key, "_", " ")), " ")
	if s == "" {
		return key
	}
	r, size := utf8.DecodeRuneInString(s)
	return strings.ToUpper(string(r)) + s[size:]
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func scalar(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		if v {
			return "yes"
		}
		return "no"
	}
	raw, _ := json.Marshal(v)
	return string(raw)
}

func isScalar(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return false
	}
	return true
}

func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(v) == ""
	case map[string]any:
		return len(v) == 0
	case []any:
		return len(v) == 0
	}
	return false
}

func objects(v any) []map[string]any {
	arr, _ := v.([]any)
	out := make([]map[string]any, 0, len(arr))
	for _, item := range arr {
		if m, ok := item.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func firstNonBlank(vals ...string) string {
	for _, v := range vals {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

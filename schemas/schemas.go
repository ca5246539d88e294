// Package schemas holds the JSON Schemas that every dossier must satisfy and
// validates documents against them. The coordinator and the agents embed the
// same copy, so a dossier accepted by an agent is accepted by the coordinator.
package schemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Schema names, without the ".json" suffix.
const (
	EntityDossier = "entity_dossier"
	POIDossier    = "poi_dossier"
	LeagueDossier = "league_dossier"
)

// MaxViolations bounds the violations listed in one error, so a document that
// is wrong everywhere still gives a message a person can read.
const MaxViolations = 20

//go:embed *.json
var files embed.FS

// baseURL only names the schemas inside the compiler; nothing is fetched.
const baseURL = "https://schemas.invalid/enrich/"

var (
	compileOnce sync.Once
	compiled    map[string]*jsonschema.Schema
	sections    map[string][]string
	compileErr  error
	printer     = message.NewPrinter(language.English)
)

// Names returns the known schema names, sorted.
func Names() []string {
	entries, err := files.ReadDir(".")
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".json"))
	}
	slices.Sort(names)
	return names
}

// Raw returns the schema text, as included in prompts.
func Raw(name string) ([]byte, error) {
	if !slices.Contains(Names(), name) {
		return nil, unknown(name)
	}
	return files.ReadFile(name + ".json")
}

func unknown(name string) error {
	return fmt.Errorf("unknown schema %q (known: %s)", name, strings.Join(Names(), ", "))
}

func compileAll() {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	// Formats are annotations only in 2020-12 unless asserted; a dossier with
	// a malformed date or URL must be rejected before it reaches the graph.
	c.AssertFormat()
	names := Names()
	for _, name := range names {
		raw, err := files.ReadFile(name + ".json")
		if err != nil {
			compileErr = fmt.Errorf("read schema %s: %w", name, err)
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			compileErr = fmt.Errorf("parse schema %s: %w", name, err)
			return
		}
		if err := c.AddResource(baseURL+name+".json", doc); err != nil {
			compileErr = fmt.Errorf("add schema %s: %w", name, err)
			return
		}
	}
	var err error
	out := make(map[string]*jsonschema.Schema, len(names))
	secs := make(map[string][]string, len(names))
	for _, name := range names {
		raw, _ := files.ReadFile(name + ".json")
		if secs[name], err = claimSections(raw); err != nil {
			compileErr = fmt.Errorf("read sections of schema %s: %w", name, err)
			return
		}
		sch, err := c.Compile(baseURL + name + ".json")
		if err != nil {
			compileErr = fmt.Errorf("compile schema %s: %w", name, err)
			return
		}
		out[name] = sch
	}
	compiled, sections = out, secs
}

// Validate checks doc against the named schema, then checks source
// attribution and relationships with the default Options. A failure is an
// *Error listing each violation on its own line as "<json pointer>: <message>".
func Validate(name string, doc []byte) error {
	return ValidateWith(name, doc, Options{})
}

// ValidateWith is Validate with explicit Options. The cross-field checks run
// only on a document that satisfies the schema, so every violation names one
// concrete problem.
func ValidateWith(name string, doc []byte, opts Options) error {
	_, err := check(name, doc, opts)
	return err
}

// ValidateEntity is Validate for a dossier that must be about entityID: the
// coordinator checks each result against its lease with one parse of the
// document.
func ValidateEntity(name string, doc []byte, entityID string) error {
	v, err := check(name, doc, Options{})
	if err != nil {
		return err
	}
	// The schema requires entity_id as a string.
	if got, _ := v.(map[string]any)["entity_id"].(string); got != entityID {
		return fmt.Errorf("dossier is about entity %q, the lease is for %q", got, entityID)
	}
	return nil
}

// check decodes doc once, validates it against the named schema and then the
// cross-field rules, and returns the decoded document.
func check(name string, doc []byte, opts Options) (any, error) {
	compileOnce.Do(compileAll)
	if compileErr != nil {
		return nil, compileErr
	}
	sch, ok := compiled[name]
	if !ok {
		return nil, unknown(name)
	}
	// UseNumber keeps numbers exact, as the validator expects.
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%s: document is not valid JSON: %w", name, err)
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("%s: document is not valid JSON: data after the top-level value", name)
	}
	err := sch.Validate(v)
	if err == nil {
		if vs := attribution(sections[name], v, opts); len(vs) > 0 {
			return nil, newError(name, vs)
		}
		return v, nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return nil, fmt.Errorf("validate against %s: %w", name, err)
	}
	return nil, newError(name, violations(verr))
}

func newError(name string, vs []Violation) *Error {
	slices.SortStableFunc(vs, func(a, b Violation) int { return strings.Compare(a.Pointer, b.Pointer) })
	out := &Error{Schema: name, Violations: vs}
	if len(vs) > MaxViolations {
		out.Violations, out.Omitted = vs[:MaxViolations], len(vs)-MaxViolations
	}
	return out
}

// Violation is one reason a document does not satisfy a schema.
type Violation struct {
	// Pointer is the JSON pointer of the offending value ("/" for the root).
	Pointer string
	Message string
}

// Error is returned by Validate when a well-formed JSON document breaks the
// schema.
type Error struct {
	Schema     string
	Violations []Violation
	// Omitted counts violations beyond MaxViolations.
	Omitted int
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dossier does not match schema %s:", e.Schema)
	for _, v := range e.Violations {
		fmt.Fprintf(&b, "\n  %s: %s", v.Pointer, v.Message)
	}
	if e.Omitted > 0 {
		fmt.Fprintf(&b, "\n  ... and %d more", e.Omitted)
	}
	return b.String()
}

func violations(root *jsonschema.ValidationError) []Violation {
	var out []Violation
	seen := map[Violation]bool{}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		// Only leaves name a concrete problem; inner nodes say "allOf failed"
		// or "validation failed" and would repeat their children.
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		v := Violation{Pointer: pointer(e.InstanceLocation), Message: oneLine(e.ErrorKind.LocalizedString(printer))}
		if _, ok := e.ErrorKind.(*kind.FalseSchema); ok {
			v.Message = "not allowed"
		}
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	walk(root)
	slices.SortStableFunc(out, func(a, b Violation) int { return strings.Compare(a.Pointer, b.Pointer) })
	return out
}

// maxMessage bounds one violation message: format errors quote the offending
// value, which may be a whole paragraph written by the model.
const maxMessage = 300

func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func pointer(tokens []string) string {
	if len(tokens) == 0 {
		return "/"
	}
	var b strings.Builder
	for _, t := range tokens {
		t = strings.ReplaceAll(t, "~", "~0")
		t = strings.ReplaceAll(t, "/", "~1")
		b.WriteByte('/')
		b.WriteString(t)
	}
	return b.String()
}

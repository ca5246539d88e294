// Package prompts renders the research instructions given to the agent for
// each instance type. The templates are embedded so the coordinator and every
// agent render the same text.
package prompts

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

//go:embed *.md _shared.tmpl
var files embed.FS

// Data is what a template sees.
type Data struct {
	Entity       *enrichv1.Entity
	InstanceType string
	// Schema is the schema name (entity_dossier, ...); SchemaJSON its text.
	Schema     string
	SchemaJSON string
	// Attempt is 1-based; later attempts remind the model why the last one
	// was thrown away.
	Attempt int32
}

var templates = template.Must(
	template.New("").
		Option("missingkey=error").
		Funcs(template.FuncMap{"entityJSON": entityJSON}).
		ParseFS(files, "*.md", "_shared.tmpl"),
)

// Names returns the template names (the instance types they serve), sorted.
func Names() []string {
	var names []string
	for _, t := range templates.Templates() {
		if n, ok := strings.CutSuffix(t.Name(), ".md"); ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Render renders the named template ("entities", "persons", "leagues").
func Render(name string, d Data) (string, error) {
	t := templates.Lookup(name + ".md")
	if t == nil {
		return "", fmt.Errorf("unknown prompt template %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	if d.Entity == nil {
		return "", errors.New("render prompt: no entity")
	}
	if d.SchemaJSON == "" || d.Schema == "" {
		return "", errors.New("render prompt: no schema")
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("render prompt %s: %w", name, err)
	}
	return b.String(), nil
}

// entityRecord fixes the field names and order the model sees, independent
// of how the protobuf message happens to marshal.
type entityRecord struct {
	ID         string            `json:"id"`
	Type       string            `json:"type"`
	Name       string            `json:"name"`
	Priority   string            `json:"priority,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// entityJSON marshals the entity for a fenced block. Values come from an
// operator's file and may be hostile; JSON escaping keeps them on one line
// inside a string, and escaping backticks means no value can close the fence.
func entityJSON(e *enrichv1.Entity) (string, error) {
	rec := entityRecord{ID: e.GetId(), Type: e.GetType(), Name: e.GetName(), Attributes: maps.Clone(e.GetAttributes())}
	if p := e.GetPriority(); p != enrichv1.Priority_PRIORITY_UNSPECIFIED {
		rec.Priority = strings.ToLower(strings.TrimPrefix(p.String(), "PRIORITY_"))
	}
	raw, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return "", fmt.Errorf("marshal entity: %w", err)
	}
	return strings.ReplaceAll(string(raw), "`", `\u0060`), nil
}

package graph

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names written into the batch folder when no server is configured.
const (
	CypherFile        = "graph.cypher"
	NodesFile         = "nodes.jsonl"
	RelationshipsFile = "relationships.jsonl"
)

// WriteFiles writes the plan into dir as graph.cypher (the same statements the server path runs,
// with the rows inlined as escaped literals, one statement per chunk, each ending in ";" on its
// own line so cypher-shell runs them in order) and as nodes.jsonl / relationships.jsonl.
func WriteFiles(dir string, opts Options, p *Plan) (*Report, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	rep := &Report{Target: "files", Files: []string{CypherFile, NodesFile, RelationshipsFile},
		Nodes: len(p.Nodes), Rels: len(p.Rels), Sources: len(p.Sources),
		Skipped: append([]Skipped{}, p.Skipped...), Unlabelled: p.Unlabelled, Unverified: []Target{},
		Validation: Validation{Problems: []string{}}}
	from := map[string][]string{}
	for _, r := range p.Rels {
		from[r.To] = append(from[r.To], r.From+" "+r.Type)
	}
	for _, id := range p.ExternalTargets() {
		rep.Unverified = append(rep.Unverified, Target{ID: id, Action: "not_checked", From: from[id]})
	}

	var cy bytes.Buffer
	fmt.Fprintf(&cy, "// Knowledge graph of batch %s, for cypher-shell:\n//   cypher-shell -a URI -u USER -f %s\n",
		strings.ReplaceAll(p.BatchID, "\n", " "), CypherFile)
	fmt.Fprintf(&cy, "// Missing relationship targets: %s. Loading twice changes nothing.\n", opts.MissingTarget)
	for _, st := range opts.schemaStatements() {
		cy.WriteString(st.text + ";\n")
	}
	for _, st := range opts.writeStatements(p, p.Rels) {
		for _, rows := range chunks(st.rows, opts.BatchSize) {
			lit, err := literal(rows)
			if err != nil {
				return nil, fmt.Errorf("write %s: %w", CypherFile, err)
			}
			cy.WriteString(strings.Replace(st.text, "UNWIND $rows AS row", "UNWIND "+lit+" AS row", 1) + ";\n")
		}
	}

	var nodes, rels bytes.Buffer
	enc := func(buf *bytes.Buffer, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
		return nil
	}
	type nodeLine struct {
		Labels []string       `json:"labels"`
		Key    string         `json:"key"`
		Props  map[string]any `json:"properties"`
	}
	type end struct {
		Label string `json:"label"`
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	type relLine struct {
		Type  string         `json:"type"`
		From  end            `json:"from"`
		To    end            `json:"to"`
		Props map[string]any `json:"properties,omitempty"`
		// ToName names a target that may not exist yet (a stub under missing_target: stub).
		ToName string `json:"to_name,omitempty"`
	}
	for _, n := range p.Nodes {
		labels := []string{opts.EntityLabel}
		if n.Label != "" {
			labels = append(labels, n.Label)
		}
		if err := enc(&nodes, nodeLine{Labels: labels, Key: "id", Props: jsonProps(n.Props)}); err != nil {
			return nil, err
		}
	}
	for _, s := range p.Sources {
		if err := enc(&nodes, nodeLine{Labels: []string{opts.SourceLabel}, Key: "url", Props: jsonProps(s.Props)}); err != nil {
			return nil, err
		}
	}
	for _, r := range p.Rels {
		l := relLine{Type: r.Type, From: end{opts.EntityLabel, "id", r.From}, To: end{opts.EntityLabel, "id", r.To},
			Props: jsonProps(r.Props), ToName: r.ToName}
		if err := enc(&rels, l); err != nil {
			return nil, err
		}
	}
	for _, s := range p.Supports {
		l := relLine{Type: SupportsType, From: end{opts.SourceLabel, "url", s.URL}, To: end{opts.EntityLabel, "id", s.EntityID}}
		if err := enc(&rels, l); err != nil {
			return nil, err
		}
	}
	for name, data := range map[string][]byte{CypherFile: cy.Bytes(), NodesFile: nodes.Bytes(), RelationshipsFile: rels.Bytes()} {
		if err := writeAtomic(filepath.Join(dir, name), data); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// jsonProps writes times as RFC 3339 strings, the form every JSON reader understands.
func jsonProps(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if t, ok := v.(time.Time); ok {
			v = t.UTC().Format(time.RFC3339Nano)
		}
		out[k] = v
	}
	return out
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}

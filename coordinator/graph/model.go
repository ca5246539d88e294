package graph

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Missing-target policies (the configuration's neo4j.missing_target).
const (
	MissingTargetStub   = "stub"
	MissingTargetReport = "report"
)

// SupportsType links a source node to the entity whose dossier cites it. It is a constant of this
// package, never read from input.
const SupportsType = "SUPPORTS"

// Options are the names and limits the graph is written with. The caller validates the names
// (coordinator/config does); New and Build check them again because they end up in Cypher text.
type Options struct {
	EntityLabel       string
	SourceLabel       string
	UnverifiedLabel   string
	Labels            map[string]string // entity type -> label
	RelationshipTypes []string
	MissingTarget     string
	BatchSize         int
}

// Entry is one succeeded entity of a batch.
type Entry struct {
	EntityID     string
	EntityType   string
	Name         string
	InstanceType string
	// DossierPath is the dossier's JSON file relative to the batch folder.
	DossierPath string
	Dossier     []byte
}

// Node is one entity node to write.
type Node struct {
	ID    string
	Label string // "" when the entity type maps to no label: the node gets the entity label only
	Props map[string]any
	Hash  string
}

// Rel is one relationship between entity nodes.
type Rel struct {
	From, Type, To string
	ToName         string
	Props          map[string]any
	Hash           string
}

// Source is one cited source.
type Source struct {
	URL   string
	Props map[string]any
	Hash  string
}

// Support links a source to an entity that cites it.
type Support struct{ URL, EntityID string }

// Skipped is a dossier relationship that is not written, and why.
type Skipped struct {
	From   string `json:"from"`
	Type   string `json:"type"`
	Target string `json:"target"`
	Reason string `json:"reason"`
}

// Plan is the graph one batch produces, before it is written anywhere.
type Plan struct {
	BatchID  string
	Nodes    []Node
	Rels     []Rel
	Sources  []Source
	Supports []Support
	Skipped  []Skipped
	// Unlabelled lists entity types with no configured label.
	Unlabelled []string
}

// dossier is the part of a dossier the graph uses. The schemas allow a relationship to name its
// target by id, by name, or both.
type dossier struct {
	EntityID    string  `json:"entity_id"`
	EntityType  string  `json:"entity_type"`
	Name        string  `json:"name"`
	Mode        string  `json:"mode"`
	Summary     string  `json:"summary"`
	Confidence  float64 `json:"confidence"`
	GeneratedAt string  `json:"generated_at"`
	KeyFacts    []struct {
		Label string `json:"label"`
		Value string `json:"value"`
	} `json:"key_facts"`
	Relationships []struct {
		Type       string   `json:"type"`
		TargetID   string   `json:"target_id"`
		TargetName string   `json:"target_name"`
		Confidence *float64 `json:"confidence"`
		SourceURL  string   `json:"source_url"`
	} `json:"relationships"`
	Sources []struct {
		URL         string `json:"url"`
		Title       string `json:"title"`
		Publisher   string `json:"publisher"`
		RetrievedAt string `json:"retrieved_at"`
	} `json:"sources"`
}

// NameTargetPrefix starts the id of a target that a dossier names without an id and that no
// entity of the batch carries by that exact name.
const NameTargetPrefix = "name:"

// Build turns a batch's dossiers into a Plan. enrichedAt is used when a dossier has no readable
// generated_at.
func Build(opts Options, batchID string, entries []Entry, enrichedAt time.Time) (*Plan, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	p := &Plan{BatchID: batchID}
	allowed := map[string]bool{}
	for _, t := range opts.RelationshipTypes {
		allowed[t] = true
	}
	ds := make([]dossier, len(entries))
	byName := map[string]string{}
	ambiguous := map[string]bool{}
	for i, e := range entries {
		if err := json.Unmarshal(e.Dossier, &ds[i]); err != nil {
			return nil, fmt.Errorf("dossier of %q: %w", e.EntityID, err)
		}
		if other, ok := byName[e.Name]; ok && other != e.EntityID {
			ambiguous[e.Name] = true
		}
		byName[e.Name] = e.EntityID
	}
	unlabelled := map[string]bool{}
	sources := map[string]int{}
	for i, e := range entries {
		d := ds[i]
		label, ok := opts.Labels[e.EntityType]
		if !ok && !unlabelled[e.EntityType] {
			unlabelled[e.EntityType] = true
			p.Unlabelled = append(p.Unlabelled, e.EntityType)
		}
		at := enrichedAt.UTC()
		if t, err := time.Parse(time.RFC3339, d.GeneratedAt); err == nil {
			at = t.UTC()
		}
		facts := make([]string, 0, len(d.KeyFacts))
		for _, f := range d.KeyFacts {
			facts = append(facts, f.Label+": "+f.Value)
		}
		props := map[string]any{
			"id": e.EntityID, "name": e.Name, "entity_type": e.EntityType, "instance_type": e.InstanceType,
			"summary": d.Summary, "key_facts": facts, "confidence": d.Confidence, "mode": d.Mode,
			"enriched_at": at, "batch_id": batchID, "dossier_path": e.DossierPath,
		}
		p.Nodes = append(p.Nodes, Node{ID: e.EntityID, Label: label, Props: props, Hash: hash(props)})

		seen := map[string]bool{}
		for _, r := range d.Relationships {
			target := r.TargetID
			if target == "" {
				if id, ok := byName[r.TargetName]; ok && !ambiguous[r.TargetName] {
					target = id
				} else if r.TargetName != "" {
					target = NameTargetPrefix + strings.ToLower(strings.TrimSpace(r.TargetName))
				}
			}
			switch {
			case !allowed[r.Type]:
				p.Skipped = append(p.Skipped, Skipped{From: e.EntityID, Type: r.Type, Target: cmpOr(r.TargetID, r.TargetName),
					Reason: "relationship type not in neo4j.relationship_types"})
				continue
			case target == "":
				p.Skipped = append(p.Skipped, Skipped{From: e.EntityID, Type: r.Type, Reason: "no target id or name"})
				continue
			case target == e.EntityID:
				p.Skipped = append(p.Skipped, Skipped{From: e.EntityID, Type: r.Type, Target: target, Reason: "points at itself"})
				continue
			}
			key := r.Type + "\x00" + target
			if seen[key] {
				continue // one relationship per (from, type, to): the first mention wins
			}
			seen[key] = true
			rp := map[string]any{"batch_id": batchID}
			if r.Confidence != nil {
				rp["confidence"] = *r.Confidence
			}
			if r.SourceURL != "" {
				rp["source_url"] = r.SourceURL
			}
			p.Rels = append(p.Rels, Rel{From: e.EntityID, Type: r.Type, To: target, ToName: cmpOr(r.TargetName, target),
				Props: rp, Hash: hash(rp)})
		}
		cited := map[string]bool{}
		for _, s := range d.Sources {
			if s.URL == "" || cited[s.URL] {
				continue
			}
			cited[s.URL] = true
			sp := map[string]any{"url": s.URL, "title": s.Title}
			if s.Publisher != "" {
				sp["publisher"] = s.Publisher
			}
			if t, err := time.Parse(time.RFC3339, s.RetrievedAt); err == nil {
				sp["retrieved_at"] = t.UTC()
			}
			// Several dossiers may cite one url: the latest retrieval describes it.
			if j, ok := sources[s.URL]; ok {
				if newer(sp, p.Sources[j].Props) {
					p.Sources[j] = Source{URL: s.URL, Props: sp, Hash: hash(sp)}
				}
			} else {
				sources[s.URL] = len(p.Sources)
				p.Sources = append(p.Sources, Source{URL: s.URL, Props: sp, Hash: hash(sp)})
			}
			p.Supports = append(p.Supports, Support{URL: s.URL, EntityID: e.EntityID})
		}
	}
	slices.Sort(p.Unlabelled)
	return p, nil
}

// ExternalTargets lists relationship targets that are not entities of this batch, sorted.
func (p *Plan) ExternalTargets() []string {
	in := map[string]bool{}
	for _, n := range p.Nodes {
		in[n.ID] = true
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range p.Rels {
		if !in[r.To] && !seen[r.To] {
			seen[r.To] = true
			out = append(out, r.To)
		}
	}
	slices.Sort(out)
	return out
}

func newer(a, b map[string]any) bool {
	ta, _ := a["retrieved_at"].(time.Time)
	tb, _ := b["retrieved_at"].(time.Time)
	return ta.After(tb)
}

// hash fingerprints a property map; encoding/json sorts map keys, so equal maps hash equal.
func hash(props map[string]any) string {
	b, err := json.Marshal(props)
	if err != nil {
		panic(fmt.Sprintf("graph: hash properties: %v", err)) // only strings, numbers, times and string lists
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

package consolidate

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/sportsintel/enrich/coordinator/store"
)

// PayloadFile is the batch's API payload: one JSON object per line, one line per entity of the
// batch, in the batch's item order. docs/observability.md documents the shape.
const PayloadFile = "payload.jsonl"

// Payload is one entity's API payload: what a downstream API ingests for the entity. Entities
// without a dossier (failed, cancelled, skipped, still open) are included with "dossier": null
// and their reason, so a consumer can tell "not enriched" from "missing".
type Payload struct {
	EntityID     string          `json:"entity_id"`
	EntityType   string          `json:"entity_type"`
	Name         string          `json:"name"`
	InstanceType string          `json:"instance_type"`
	BatchID      string          `json:"batch_id"`
	Status       string          `json:"status"`
	Attempts     int             `json:"attempts"`
	Error        string          `json:"error,omitempty"`
	DossierFile  string          `json:"dossier_file,omitempty"`
	Dossier      json.RawMessage `json:"dossier"`
	Metrics      *PayloadMetrics `json:"metrics,omitempty"`
}

// PayloadMetrics describes the run that produced the dossier.
type PayloadMetrics struct {
	DurationMS   int64   `json:"duration_ms"`
	CostUSD      float64 `json:"cost_usd"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	Runner       string  `json:"runner,omitempty"`
}

// buildPayload renders payload.jsonl.
func buildPayload(batchID string, items []*store.Item, results []*store.ResultRow, files map[int64]string) ([]byte, error) {
	byItem := make(map[int64]*store.ResultRow, len(results))
	for _, r := range results {
		byItem[r.Item.ID] = r
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, it := range items {
		p := Payload{EntityID: it.EntityID, EntityType: it.EntityType, Name: it.Name, InstanceType: it.InstanceType,
			BatchID: batchID, Status: string(it.State), Attempts: it.Attempt, Dossier: json.RawMessage("null")}
		if res := byItem[it.ID]; res != nil {
			var compact bytes.Buffer
			if err := json.Compact(&compact, res.Dossier); err != nil {
				return nil, fmt.Errorf("dossier of %q is not JSON: %w", it.EntityID, err)
			}
			p.Dossier = compact.Bytes()
			p.DossierFile = files[it.ID]
			m := res.Metrics
			p.Metrics = &PayloadMetrics{DurationMS: m.Duration.Milliseconds(), CostUSD: m.CostUSD, InputTokens: m.InputTokens,
				OutputTokens: m.OutputTokens, Runner: m.Runner}
		} else if it.State != store.ItemSucceeded {
			p.Error = it.LastError
		}
		if err := enc.Encode(p); err != nil {
			return nil, fmt.Errorf("encode payload of %q: %w", it.EntityID, err)
		}
	}
	return buf.Bytes(), nil
}

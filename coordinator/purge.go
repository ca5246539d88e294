package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sportsintel/enrich/coordinator/store"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// PurgeEntity removes one entity from the store and from its batches' output folders, then
// writes those batches' reports, payloads and graph exports again without it. It is how an
// operator honours a request to delete what was gathered about a person.
func (c *controlService) PurgeEntity(ctx context.Context, req *enrichv1.PurgeEntityRequest) (*enrichv1.PurgeEntityResponse, error) {
	s := c.s
	entityID := req.GetEntityId()
	if entityID == "" {
		return nil, status.Error(codes.InvalidArgument, "entity_id is required")
	}
	purged, err := s.st.PurgeEntity(ctx, store.PurgeEntityParams{EntityID: entityID, BatchID: req.GetBatchId()})
	if err != nil {
		return nil, storeError(err)
	}
	out := &enrichv1.PurgeEntityResponse{}
	log := s.log.Named("control")
	for _, p := range purged {
		out.BatchIds = append(out.BatchIds, p.BatchID)
		removed, err := removeDossierFiles(p.OutputDir, p.InstanceType, entityID)
		out.FilesRemoved = append(out.FilesRemoved, removed...)
		if err != nil {
			log.Error("entity purged from the store; some of its files remain", "batch_id", p.BatchID, "error", err)
			return out, status.Errorf(codes.Internal, "entity removed from the store, but deleting its files in %s failed: %v", p.OutputDir, err)
		}
		// Reports, payload.jsonl and the graph export name the entity too: write them again.
		if b, err := s.st.GetBatch(ctx, p.BatchID); err == nil && !b.ConsolidatedAt.IsZero() {
			if _, err := s.consolidate(ctx, p.BatchID); err != nil {
				return out, status.Errorf(codes.Internal, "entity removed, but rewriting batch %s's outputs failed: %v", p.BatchID, err)
			}
		}
		s.hub.publish(p.BatchID)
	}
	log.Info("entity purged", "batches", len(out.BatchIds), "files_removed", len(out.FilesRemoved))
	return out, nil
}

// removeDossierFiles deletes the dossier files of one entity in a batch folder: the JSON files
// whose entity_id is the entity, and the Markdown and PDF files of the same name. File names are
// slugs (and may carry a suffix after a collision), so the JSON content, not the name, decides.
func removeDossierFiles(outputDir, instanceType, entityID string) ([]string, error) {
	if outputDir == "" {
		return nil, nil
	}
	dir := filepath.Join(outputDir, instanceType)
	jsons, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, f := range jsons {
		raw, err := os.ReadFile(f)
		if err != nil {
			return removed, err
		}
		var head struct {
			EntityID string `json:"entity_id"`
		}
		if json.Unmarshal(raw, &head) != nil || head.EntityID != entityID {
			continue
		}
		stem := strings.TrimSuffix(f, ".json")
		for _, ext := range []string{".json", ".md", ".pdf"} {
			if err := os.Remove(stem + ext); err == nil {
				removed = append(removed, stem+ext)
			} else if !errors.Is(err, os.ErrNotExist) {
				return removed, err
			}
		}
	}
	return removed, nil
}

package ctl

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

type purgeConfig struct {
	Entity string
	Batch  string
}

func (c *cli) entityCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "entity",
		Short: "Act on one entity across batches (purge)",
	}
	var cfg purgeConfig
	purge := &cobra.Command{
		Use:   "purge ENTITY_ID",
		Short: "Delete everything stored about an entity: its dossiers, results and history",
		Long: `Delete everything stored about an entity: its items, results and history in the
coordinator's store, and its dossier files (json, md, pdf) in the batch folders. Reports,
payload.jsonl and graph exports of those batches are written again without it. Refused while a
batch holding the entity has not ended. A Neo4j graph keeps its node: see docs/security.md.`,
		Example: `  enrichctl entity purge person-jane-doe
  enrichctl entity purge person-jane-doe --batch 20260108-120000-1a2b3c`,
		Args: exactArgs("ENTITY_ID"),
		RunE: c.action(func(_ *cobra.Command, args []string) error {
			cfg.Entity = args[0]
			return c.withClient(func(client enrichv1.ControlServiceClient) error {
				ctx, cancel := c.unary()
				defer cancel()
				return purgeEntity(ctx, client, cfg, c.printer())
			})
		}),
	}
	purge.Flags().StringVar(&cfg.Batch, "batch", "", "only this batch (default: every batch)")
	cmd.AddCommand(purge)
	return cmd
}

func purgeEntity(ctx context.Context, client enrichv1.ControlServiceClient, cfg purgeConfig, p *printer) error {
	resp, err := client.PurgeEntity(ctx, &enrichv1.PurgeEntityRequest{EntityId: cfg.Entity, BatchId: cfg.Batch})
	if err != nil {
		return err
	}
	if p.json {
		return p.printJSON(resp)
	}
	fmt.Fprintf(p.out, "purged %s from %d batch(es): %s\n", cfg.Entity, len(resp.GetBatchIds()), strings.Join(resp.GetBatchIds(), ", "))
	for _, f := range resp.GetFilesRemoved() {
		fmt.Fprintf(p.out, "  removed %s\n", f)
	}
	return nil
}

package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

type dossierConfig struct {
	Batch  string
	Entity string
}

func (c *cli) dossierCommand() *cobra.Command {
	var cfg dossierConfig
	return &cobra.Command{
		Use:   "dossier BATCH ENTITY_ID",
		Short: "Print an entity's dossier JSON (-o json: with its item and run metrics)",
		Args:  exactArgs("BATCH", "ENTITY_ID"),
		RunE: c.action(func(_ *cobra.Command, args []string) error {
			cfg.Batch, cfg.Entity = args[0], args[1]
			return c.withClient(func(client enrichv1.ControlServiceClient) error {
				ctx, cancel := c.unary()
				defer cancel()
				return dossier(ctx, client, cfg, c.printer())
			})
		}),
	}
}

func dossier(ctx context.Context, client enrichv1.ControlServiceClient, cfg dossierConfig, p *printer) error {
	resp, err := client.GetDossier(ctx, &enrichv1.GetDossierRequest{BatchId: cfg.Batch, EntityId: cfg.Entity})
	if err != nil {
		return err
	}
	if p.json {
		return p.printJSON(resp)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, resp.GetDossierJson(), "", "  "); err != nil {
		// Show what is stored rather than nothing; the operator is likely debugging it.
		fmt.Fprintf(p.errw, "enrichctl: dossier of %s is not valid JSON: %v\n", cfg.Entity, err)
		_, err = p.out.Write(resp.GetDossierJson())
		return err
	}
	buf.WriteByte('\n')
	_, err = buf.WriteTo(p.out)
	return err
}

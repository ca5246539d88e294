package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

type dossierConfig struct {
	Batch  string // empty: the newest batch that has a dossier of Entity
	Entity string
}

// dossierSearchBatches bounds how far back `dossier ENTITY_ID` looks.
const dossierSearchBatches = 100

func (c *cli) dossierCommand() *cobra.Command {
	var cfg dossierConfig
	return &cobra.Command{
		Use:   "dossier [BATCH] ENTITY_ID",
		Short: "Print an entity's latest dossier JSON, or its dossier in BATCH (-o json: with its item and run metrics)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: c.action(func(_ *cobra.Command, args []string) error {
			if len(args) == 2 {
				cfg.Batch, cfg.Entity = args[0], args[1]
			} else {
				cfg.Entity = args[0]
			}
			return c.withClient(func(client enrichv1.ControlServiceClient) error {
				ctx, cancel := c.unary()
				defer cancel()
				return dossier(ctx, client, cfg, c.printer())
			})
		}),
	}
}

// latestDossier finds the newest batch holding a dossier of entity.
func latestDossier(ctx context.Context, client enrichv1.ControlServiceClient, entity string) (*enrichv1.GetDossierResponse, error) {
	list, err := client.ListBatches(ctx, &enrichv1.ListBatchesRequest{Limit: dossierSearchBatches})
	if err != nil {
		return nil, err
	}
	for _, b := range list.GetBatches() {
		resp, err := client.GetDossier(ctx, &enrichv1.GetDossierRequest{BatchId: b.GetId(), EntityId: entity})
		if status.Code(err) == codes.NotFound {
			continue
		}
		return resp, err
	}
	return nil, status.Errorf(codes.NotFound, "no dossier of entity %q in the last %d batches", entity, dossierSearchBatches)
}

func dossier(ctx context.Context, client enrichv1.ControlServiceClient, cfg dossierConfig, p *printer) error {
	var resp *enrichv1.GetDossierResponse
	var err error
	if cfg.Batch == "" {
		resp, err = latestDossier(ctx, client, cfg.Entity)
	} else {
		resp, err = client.GetDossier(ctx, &enrichv1.GetDossierRequest{BatchId: cfg.Batch, EntityId: cfg.Entity})
	}
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

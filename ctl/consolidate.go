package ctl

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

type consolidateConfig struct {
	Batch string
}

func (c *cli) consolidateCommand() *cobra.Command {
	var cfg consolidateConfig
	return &cobra.Command{
		Use:   "consolidate BATCH",
		Short: "(Re)write a batch's dossiers and report",
		Args:  exactArgs("BATCH"),
		RunE: c.action(func(_ *cobra.Command, args []string) error {
			cfg.Batch = args[0]
			return c.withClient(func(client enrichv1.ControlServiceClient) error {
				ctx, cancel := c.unary()
				defer cancel()
				return consolidate(ctx, client, cfg, c.printer())
			})
		}),
	}
}

func consolidate(ctx context.Context, client enrichv1.ControlServiceClient, cfg consolidateConfig, p *printer) error {
	resp, err := client.ConsolidateBatch(ctx, &enrichv1.ConsolidateBatchRequest{BatchId: cfg.Batch})
	if err != nil {
		return err
	}
	if p.json {
		return p.printJSON(resp)
	}
	fmt.Fprintf(p.out, "output dir  %s\n", resp.GetOutputDir())
	_, err = fmt.Fprintf(p.out, "dossiers    %d\n", resp.GetDossiers())
	return err
}

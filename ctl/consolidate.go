package ctl

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

type consolidateConfig struct {
	Batch string
	PDF   bool
}

func (c *cli) consolidateCommand() *cobra.Command {
	var cfg consolidateConfig
	cmd := &cobra.Command{
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
	cmd.Flags().BoolVar(&cfg.PDF, "pdf", false, "also render each dossier and the report to PDF")
	return cmd
}

func consolidate(ctx context.Context, client enrichv1.ControlServiceClient, cfg consolidateConfig, p *printer) error {
	resp, err := client.ConsolidateBatch(ctx, &enrichv1.ConsolidateBatchRequest{BatchId: cfg.Batch, Pdf: cfg.PDF})
	if err != nil {
		return err
	}
	if p.json {
		return p.printJSON(resp)
	}
	fmt.Fprintf(p.out, "output dir  %s\n", resp.GetOutputDir())
	_, err = fmt.Fprintf(p.out, "dossiers    %d\n", resp.GetDossiers())
	if err == nil && resp.GetPdfs() > 0 {
		_, err = fmt.Fprintf(p.out, "pdfs        %d\n", resp.GetPdfs())
	}
	return err
}

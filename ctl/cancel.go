package ctl

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

type cancelConfig struct {
	Batch  string
	Reason string
}

func (c *cli) cancelCommand() *cobra.Command {
	var cfg cancelConfig
	cmd := &cobra.Command{
		Use:   "cancel BATCH",
		Short: "Cancel a batch's pending entities and stop its running ones",
		Args:  exactArgs("BATCH"),
		RunE: c.action(func(_ *cobra.Command, args []string) error {
			cfg.Batch = args[0]
			return c.withClient(func(client enrichv1.ControlServiceClient) error {
				ctx, cancel := c.unary()
				defer cancel()
				return cancelBatch(ctx, client, cfg, c.printer())
			})
		}),
	}
	cmd.Flags().StringVar(&cfg.Reason, "reason", "", "why, recorded with the batch")
	return cmd
}

func cancelBatch(ctx context.Context, client enrichv1.ControlServiceClient, cfg cancelConfig, p *printer) error {
	resp, err := client.CancelBatch(ctx, &enrichv1.CancelBatchRequest{BatchId: cfg.Batch, Reason: cfg.Reason})
	if err != nil {
		return err
	}
	if p.json {
		return p.printJSON(resp)
	}
	fmt.Fprintf(p.out, "cancelled %s\n\n", resp.GetBatch().GetId())
	return writeBatch(p.out, resp.GetBatch())
}

package ctl

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

type retryConfig struct {
	Batch string
}

func (c *cli) retryCommand() *cobra.Command {
	var cfg retryConfig
	return &cobra.Command{
		Use:   "retry BATCH",
		Short: "Requeue a batch's failed entities with a fresh attempt budget",
		Args:  exactArgs("BATCH"),
		RunE: c.action(func(_ *cobra.Command, args []string) error {
			cfg.Batch = args[0]
			return c.withClient(func(client enrichv1.ControlServiceClient) error {
				ctx, cancel := c.unary()
				defer cancel()
				return retry(ctx, client, cfg, c.printer())
			})
		}),
	}
}

func retry(ctx context.Context, client enrichv1.ControlServiceClient, cfg retryConfig, p *printer) error {
	resp, err := client.RetryBatch(ctx, &enrichv1.RetryBatchRequest{BatchId: cfg.Batch})
	if err != nil {
		return err
	}
	if p.json {
		return p.printJSON(resp)
	}
	_, err = fmt.Fprintf(p.out, "requeued %d failed entities of %s\n", resp.GetRequeued(), resp.GetBatch().GetId())
	return err
}

package ctl

import (
	"context"

	"github.com/spf13/cobra"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

type batchesConfig struct {
	Limit int32
}

// BatchesLimitDefault keeps the default listing to a screenful.
const BatchesLimitDefault = 20

func (c *cli) batchesCommand() *cobra.Command {
	var cfg batchesConfig
	cmd := &cobra.Command{
		Use:   "batches",
		Short: "List batches, newest first",
		Args:  exactArgs(),
		RunE: c.action(func(*cobra.Command, []string) error {
			if cfg.Limit < 0 {
				return usageErrorf("--limit must not be negative")
			}
			return c.withClient(func(client enrichv1.ControlServiceClient) error {
				ctx, cancel := c.unary()
				defer cancel()
				return batches(ctx, client, cfg, c.printer())
			})
		}),
	}
	cmd.Flags().Int32Var(&cfg.Limit, "limit", BatchesLimitDefault, "at most N batches (0: all)")
	return cmd
}

func batches(ctx context.Context, client enrichv1.ControlServiceClient, cfg batchesConfig, p *printer) error {
	resp, err := client.ListBatches(ctx, &enrichv1.ListBatchesRequest{Limit: cfg.Limit})
	if err != nil {
		return err
	}
	if p.json {
		return p.printJSON(resp)
	}
	t := newTable(p.out, "ID", "STATE", "CREATED", "TOTAL", "SUCCEEDED", "FAILED", "SOURCE")
	for _, b := range resp.GetBatches() {
		var total, ok, failed int32
		for _, ip := range b.GetInstances() {
			total += ip.GetTotal()
			ok += ip.GetSucceeded()
			failed += ip.GetFailed()
		}
		t.row(b.GetId(), stateName(b.GetState()), fmtTime(b.GetCreatedAt()), total, ok, failed, orDash(b.GetSource()))
	}
	return t.flush()
}

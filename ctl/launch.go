package ctl

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

type launchConfig struct {
	Batch     string
	Prepare   prepareConfig // used when Prepare.From is set
	Instances string        // comma-separated names or aliases; empty: all
	Wait      bool
	BudgetUSD float64 // 0: the batch's own or the configured default
}

func (cfg *launchConfig) instanceTypes() []string {
	var out []string
	for _, s := range strings.Split(cfg.Instances, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (c *cli) launchCommand() *cobra.Command {
	var cfg launchConfig
	cmd := &cobra.Command{
		Use:   "launch [BATCH | --from FILE]",
		Short: "Start leasing a batch's entities to agents (prepares it first with --from)",
		Example: `  enrichctl launch 20260108-120000-1a2b3c --instances 1,2
  enrichctl launch --from entities.csv --wait --budget-usd 50
  enrichctl launch 20260108-120000-1a2b3c --budget-usd 80   # resume a batch that ran out`,
		Args: cobra.MaximumNArgs(1),
		RunE: c.action(func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				cfg.Batch = args[0]
			}
			if err := cfg.Prepare.readCapacityFlags(cmd); err != nil {
				return err
			}
			switch {
			case cfg.Batch != "" && cfg.Prepare.From != "":
				return usageErrorf("give either BATCH or --from FILE, not both")
			case cfg.Batch == "" && cfg.Prepare.From == "":
				return usageErrorf("give BATCH or --from FILE")
			case cfg.Prepare.From != "":
				if err := cfg.Prepare.validate(); err != nil {
					return err
				}
			}
			return c.withClient(func(client enrichv1.ControlServiceClient) error {
				return launch(c.ctx, c.unary, client, cfg, c.printer())
			})
		}),
	}
	cfg.Prepare.addFlags(cmd)
	cmd.Flags().StringVar(&cfg.Instances, "instances", "", "instance types to run, by name or alias (1,2); default all")
	cmd.Flags().BoolVar(&cfg.Wait, "wait", false, "follow the batch until it ends; exit 3 on failures, 4 if cancelled, 5 if out of budget")
	cmd.Flags().Float64Var(&cfg.BudgetUSD, "budget-usd", 0, "stop leasing once the batch's reported cost reaches this many USD (default: the instance types' budget_usd); "+
		"a batch that ran out resumes with a larger one")
	return cmd
}

// launch prepares (with --from) and launches a batch under one --timeout
// deadline given by unary, then with --wait follows it without a deadline.
func launch(ctx context.Context, unary func() (context.Context, context.CancelFunc), client enrichv1.ControlServiceClient,
	cfg launchConfig, p *printer) error {
	b, err := func() (*enrichv1.Batch, error) {
		uctx, cancel := unary()
		defer cancel()
		id := cfg.Batch
		if cfg.Prepare.From != "" {
			resp, err := prepare(uctx, client, cfg.Prepare, p)
			if err != nil {
				return nil, err
			}
			id = resp.GetBatch().GetId()
		}
		resp, err := client.LaunchBatch(uctx, &enrichv1.LaunchBatchRequest{BatchId: id, InstanceTypes: cfg.instanceTypes(), BudgetUsd: cfg.BudgetUSD})
		if err != nil {
			return nil, err
		}
		return resp.GetBatch(), nil
	}()
	if err != nil {
		return err
	}
	if cfg.Wait {
		if !p.json {
			fmt.Fprintf(p.errw, "launched %s\n", b.GetId())
		}
		return watch(ctx, client, watchConfig{Batch: b.GetId()}, p)
	}
	if p.json {
		return p.printJSON(&enrichv1.LaunchBatchResponse{Batch: b})
	}
	fmt.Fprintf(p.out, "launched %s\n\n", b.GetId())
	return writeBatch(p.out, b)
}

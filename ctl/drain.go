package ctl

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

type drainConfig struct {
	Agent string
}

func (c *cli) drainCommand() *cobra.Command {
	var cfg drainConfig
	return &cobra.Command{
		Use:   "drain AGENT",
		Short: "Ask an agent to finish its running leases, take no more, and exit",
		Args:  exactArgs("AGENT"),
		RunE: c.action(func(_ *cobra.Command, args []string) error {
			cfg.Agent = args[0]
			return c.withClient(func(client enrichv1.ControlServiceClient) error {
				ctx, cancel := c.unary()
				defer cancel()
				return drain(ctx, client, cfg, c.printer())
			})
		}),
	}
}

func drain(ctx context.Context, client enrichv1.ControlServiceClient, cfg drainConfig, p *printer) error {
	resp, err := client.DrainAgent(ctx, &enrichv1.DrainAgentRequest{AgentId: cfg.Agent})
	if err != nil {
		return err
	}
	if p.json {
		return p.printJSON(resp)
	}
	a := resp.GetAgent()
	_, err = fmt.Fprintf(p.out, "draining %s: %d in flight, no new leases\n", a.GetAgentId(), a.GetInFlight())
	return err
}

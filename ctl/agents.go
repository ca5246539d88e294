package ctl

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

func (c *cli) agentsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agents",
		Short: "List connected agents (and `agents drain AGENT`)",
		Args:  exactArgs(),
		RunE: c.action(func(*cobra.Command, []string) error {
			return c.withClient(func(client enrichv1.ControlServiceClient) error {
				ctx, cancel := c.unary()
				defer cancel()
				return agents(ctx, client, c.printer())
			})
		}),
	}
	// Operators look for agent actions under `agents`; `enrichctl drain` stays as a shortcut.
	cmd.AddCommand(c.drainCommand())
	return cmd
}

func agents(ctx context.Context, client enrichv1.ControlServiceClient, p *printer) error {
	resp, err := client.ListAgents(ctx, &enrichv1.ListAgentsRequest{})
	if err != nil {
		return err
	}
	if p.json {
		return p.printJSON(resp)
	}
	now := p.now()
	t := newTable(p.out, "AGENT", "HOST", "TYPES", "SLOTS", "IN-FLIGHT", "LAST-HEARTBEAT", "VERSION", "DRAINING", "HEALTH")
	for _, a := range resp.GetAgents() {
		health := "ok"
		if a.GetHealthProblem() != "" {
			health = a.GetHealthProblem()
		}
		t.row(a.GetAgentId(), orDash(a.GetHostname()), orDash(strings.Join(a.GetInstanceTypes(), ",")), a.GetSlots(),
			a.GetInFlight(), fmtAge(a.GetLastHeartbeat(), now), orDash(a.GetVersion()), yesNo(a.GetDraining()), health)
	}
	return t.flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

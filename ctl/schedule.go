package ctl

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// scheduleCreateConfig holds the flags of schedule create.
type scheduleCreateConfig struct {
	Name       string
	Cron       string
	TZ         string
	From       string
	Types      []string
	Priority   string
	StaleAfter string
	Size       int32
	BudgetUSD  float64
	Paused     bool
	// priorityGiven: --priority filters only when given, as with prepare --from neo4j.
	priorityGiven bool
}

func (cfg *scheduleCreateConfig) validate() error {
	if cfg.Cron == "" {
		return usageErrorf("--cron is required, e.g. --cron \"0 2 * * *\" or --cron @daily")
	}
	if cfg.From != FromNeo4j {
		return usageErrorf("--from neo4j is required: schedules select from the coordinator's knowledge graph")
	}
	if cfg.Size < 0 {
		return usageErrorf("--size must not be negative")
	}
	if cfg.BudgetUSD < 0 {
		return usageErrorf("--budget-usd must not be negative")
	}
	if _, err := parsePriority(cfg.Priority); err != nil {
		return err
	}
	if cfg.StaleAfter != "" {
		if _, err := parseAge(cfg.StaleAfter); err != nil {
			return err
		}
	}
	return nil
}

func (cfg *scheduleCreateConfig) request() (*enrichv1.CreateScheduleRequest, error) {
	src := &enrichv1.Neo4JSource{EntityTypes: cfg.Types}
	if cfg.priorityGiven {
		prio, err := parsePriority(cfg.Priority)
		if err != nil {
			return nil, err
		}
		src.MinPriority = prio
	}
	if cfg.StaleAfter != "" {
		age, err := parseAge(cfg.StaleAfter)
		if err != nil {
			return nil, err
		}
		src.StaleAfter = durationpb.New(age)
	}
	return &enrichv1.CreateScheduleRequest{Name: cfg.Name, Cron: cfg.Cron, Timezone: cfg.TZ, Neo4JSource: src,
		Size: cfg.Size, BudgetUsd: cfg.BudgetUSD, Paused: cfg.Paused}, nil
}

func (c *cli) scheduleCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Prepare and launch batches from the knowledge graph on a cron",
		Long: `A schedule prepares a batch from the coordinator's knowledge graph (as prepare
--from neo4j) and launches it at the times its cron names. The coordinator fires
each run once, even with several coordinators on one database or across restarts,
and skips a run while the batch of the previous one is still running.`,
	}
	cmd.AddCommand(c.scheduleCreateCommand(), c.scheduleListCommand(),
		c.scheduleNameCommand("delete", "Delete a schedule (a batch it launched runs on)", scheduleDelete),
		c.scheduleNameCommand("pause", "Stop a schedule from firing until resume", schedulePause),
		c.scheduleNameCommand("resume", "Fire a paused schedule again, from its next time after now", scheduleResume))
	return cmd
}

func (c *cli) scheduleCreateCommand() *cobra.Command {
	var cfg scheduleCreateConfig
	cmd := &cobra.Command{
		Use:   "create --cron SPEC --from neo4j",
		Short: "Create a schedule; prints its name",
		Long: `Creates a schedule. --cron takes five fields (minute hour day-of-month month
day-of-week) or a descriptor (@hourly, @daily, @weekly, @monthly, @every 6h), read
in UTC unless --tz (or a CRON_TZ=Zone prefix) names an IANA time zone. Each run
selects like prepare --from neo4j with the same --types, --priority, --stale-after
and --size, and launches the batch with --budget-usd (default: the instance types'
configured budgets).`,
		Example: `  enrichctl schedule create --name nightly --cron "0 2 * * *" --from neo4j --stale-after 30d --size 90
  enrichctl schedule create --cron @weekly --tz Europe/London --from neo4j --types Person --budget-usd 40`,
		Args: exactArgs(),
		RunE: c.action(func(cmd *cobra.Command, _ []string) error {
			cfg.priorityGiven = cmd.Flags().Changed("priority")
			if err := cfg.validate(); err != nil {
				return err
			}
			return c.withClient(func(client enrichv1.ControlServiceClient) error {
				ctx, cancel := c.unary()
				defer cancel()
				return scheduleCreate(ctx, client, cfg, c.printer())
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Name, "name", "", "schedule name (default: one is picked)")
	f.StringVar(&cfg.Cron, "cron", "", `when to run: "0 2 * * *", @daily, @every 6h ...`)
	f.StringVar(&cfg.TZ, "tz", "", "IANA time zone the cron is read in, e.g. Europe/London (default UTC)")
	f.StringVar(&cfg.From, "from", "", `"neo4j": select from the coordinator's knowledge graph`)
	f.StringSliceVar(&cfg.Types, "types", nil, "entity types to select, e.g. Club,Person (default: all)")
	f.StringVar(&cfg.Priority, "priority", "normal", "only entities of at least this priority: high, normal or low (only when given)")
	f.StringVar(&cfg.StaleAfter, "stale-after", "", "only entities never enriched or enriched longer ago than this, e.g. 30d, 2w, 36h")
	f.Int32Var(&cfg.Size, "size", 0, "cap each batch at N entities (0: only per-type capacities)")
	f.Float64Var(&cfg.BudgetUSD, "budget-usd", 0, "budget of each batch in USD (0: the instance types' configured budgets)")
	f.BoolVar(&cfg.Paused, "paused", false, "create the schedule paused")
	return cmd
}

func scheduleCreate(ctx context.Context, client enrichv1.ControlServiceClient, cfg scheduleCreateConfig, p *printer) error {
	req, err := cfg.request()
	if err != nil {
		return err
	}
	resp, err := client.CreateSchedule(ctx, req)
	if err != nil {
		return err
	}
	if p.json {
		return p.printJSON(resp)
	}
	sc := resp.GetSchedule()
	fmt.Fprintf(p.errw, "schedule %s: %s (%s), %s; next run %s\n", sc.GetName(), sc.GetCron(), sc.GetTimezone(),
		selectionText(sc), fmtTime(sc.GetNextRunAt()))
	_, err = fmt.Fprintln(p.out, sc.GetName())
	return err
}

func (c *cli) scheduleListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List schedules: next run, last run, last batch and what the last run did",
		Args:  exactArgs(),
		RunE: c.action(func(*cobra.Command, []string) error {
			return c.withClient(func(client enrichv1.ControlServiceClient) error {
				ctx, cancel := c.unary()
				defer cancel()
				return scheduleList(ctx, client, c.printer())
			})
		}),
	}
}

func scheduleList(ctx context.Context, client enrichv1.ControlServiceClient, p *printer) error {
	resp, err := client.ListSchedules(ctx, &enrichv1.ListSchedulesRequest{})
	if err != nil {
		return err
	}
	if p.json {
		return p.printJSON(resp)
	}
	t := newTable(p.out, "NAME", "CRON", "NEXT RUN", "LAST RUN", "LAST BATCH", "STATUS", "SELECTION")
	for _, sc := range resp.GetSchedules() {
		cron := sc.GetCron()
		if sc.GetTimezone() != "UTC" {
			cron += " (" + sc.GetTimezone() + ")"
		}
		t.row(sc.GetName(), cron, fmtTime(sc.GetNextRunAt()), fmtTime(sc.GetLastRunAt()), orDash(sc.GetLastBatchId()),
			scheduleStatus(sc), selectionText(sc))
	}
	return t.flush()
}

// scheduleStatus says what the schedule does now or what its last run did.
func scheduleStatus(sc *enrichv1.Schedule) string {
	var last string
	switch sc.GetLastOutcome() {
	case enrichv1.ScheduleOutcome_SCHEDULE_OUTCOME_LAUNCHED:
		last = "launched"
	case enrichv1.ScheduleOutcome_SCHEDULE_OUTCOME_SKIPPED:
		last = "skipped: " + sc.GetLastMessage()
	case enrichv1.ScheduleOutcome_SCHEDULE_OUTCOME_FAILED:
		last = "failed: " + sc.GetLastMessage()
	default:
		last = "not run yet"
	}
	switch {
	case sc.GetFiringSince() != nil:
		return "preparing since " + fmtTime(sc.GetFiringSince())
	case sc.GetPaused():
		return "paused; last " + last
	}
	return last
}

// selectionText is the schedule's selection as the flags that made it.
func selectionText(sc *enrichv1.Schedule) string {
	src := sc.GetNeo4JSource()
	parts := []string{"neo4j"}
	if len(src.GetEntityTypes()) > 0 {
		parts = append(parts, "types="+strings.Join(src.GetEntityTypes(), ","))
	}
	switch src.GetMinPriority() {
	case enrichv1.Priority_PRIORITY_HIGH:
		parts = append(parts, "priority>=high")
	case enrichv1.Priority_PRIORITY_NORMAL:
		parts = append(parts, "priority>=normal")
	}
	if d := src.GetStaleAfter(); d != nil {
		parts = append(parts, "stale-after="+d.AsDuration().String())
	}
	if sc.GetSize() > 0 {
		parts = append(parts, fmt.Sprintf("size=%d", sc.GetSize()))
	}
	if sc.GetBudgetUsd() > 0 {
		parts = append(parts, fmt.Sprintf("budget=$%.2f", sc.GetBudgetUsd()))
	}
	return strings.Join(parts, " ")
}

// scheduleNameCommand builds a verb that takes one schedule name.
func (c *cli) scheduleNameCommand(verb, short string, fn func(context.Context, enrichv1.ControlServiceClient, string, *printer) error) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  exactArgs("NAME"),
		RunE: c.action(func(_ *cobra.Command, args []string) error {
			return c.withClient(func(client enrichv1.ControlServiceClient) error {
				ctx, cancel := c.unary()
				defer cancel()
				return fn(ctx, client, args[0], c.printer())
			})
		}),
	}
}

func scheduleDelete(ctx context.Context, client enrichv1.ControlServiceClient, name string, p *printer) error {
	resp, err := client.DeleteSchedule(ctx, &enrichv1.DeleteScheduleRequest{Name: name})
	if err != nil {
		return err
	}
	if p.json {
		return p.printJSON(resp)
	}
	_, err = fmt.Fprintf(p.out, "schedule %s deleted\n", name)
	return err
}

func schedulePause(ctx context.Context, client enrichv1.ControlServiceClient, name string, p *printer) error {
	resp, err := client.PauseSchedule(ctx, &enrichv1.PauseScheduleRequest{Name: name})
	if err != nil {
		return err
	}
	if p.json {
		return p.printJSON(resp)
	}
	_, err = fmt.Fprintf(p.out, "schedule %s paused\n", name)
	return err
}

func scheduleResume(ctx context.Context, client enrichv1.ControlServiceClient, name string, p *printer) error {
	resp, err := client.ResumeSchedule(ctx, &enrichv1.ResumeScheduleRequest{Name: name})
	if err != nil {
		return err
	}
	if p.json {
		return p.printJSON(resp)
	}
	_, err = fmt.Fprintf(p.out, "schedule %s resumed; next run %s\n", name, fmtTime(resp.GetSchedule().GetNextRunAt()))
	return err
}

package ctl

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sportsintel/enrich/ctl/entityfile"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// prepareConfig holds the flags of prepare, which launch --from shares.
type prepareConfig struct {
	From     string
	Size     int32
	Priority string
	// Capacity overrides by instance type alias ("1"); only flags given.
	Capacity map[string]int32
	// With --from neo4j: entity types to select, only nodes of at least Priority (when given),
	// only nodes not enriched within StaleAfter (when given).
	Types         []string
	StaleAfter    string
	priorityGiven bool
}

// FromNeo4j is the --from value that selects entities from the coordinator's knowledge graph.
const FromNeo4j = "neo4j"

func (cfg *prepareConfig) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&cfg.From, "from", "", "entity file (CSV or JSON Lines), or \"neo4j\": select from the coordinator's knowledge graph")
	f.Int32Var(&cfg.Size, "size", 0, "cap the whole batch at N entities (0: only per-type capacities)")
	f.StringVar(&cfg.Priority, "priority", "normal", "priority of entities that carry none: high, normal or low; with --from neo4j: only entities of at least this priority")
	f.StringSliceVar(&cfg.Types, "types", nil, "with --from neo4j: entity types to select, e.g. Club,Person (default: all)")
	f.StringVar(&cfg.StaleAfter, "stale-after", "", "with --from neo4j: only entities never enriched or enriched longer ago than this, e.g. 30d, 2w, 36h")
	for _, alias := range []string{"1", "2", "3"} {
		f.Int32("instance"+alias, 0, "batch capacity of instance type "+alias+" (default: the coordinator's)")
	}
}

// readCapacityFlags keeps only the --instanceN flags given, so the
// coordinator's defaults apply to the rest.
func (cfg *prepareConfig) readCapacityFlags(cmd *cobra.Command) error {
	// --priority is a default for file entities but a filter on the graph, applied only when
	// given; launch --from shares this, so it is read here.
	cfg.priorityGiven = cmd.Flags().Changed("priority")
	for _, alias := range []string{"1", "2", "3"} {
		name := "instance" + alias
		if !cmd.Flags().Changed(name) {
			continue
		}
		n, err := cmd.Flags().GetInt32(name)
		if err != nil {
			return usageErrorf("--%s: %v", name, err)
		}
		if n < 0 {
			return usageErrorf("--%s must not be negative", name)
		}
		if cfg.Capacity == nil {
			cfg.Capacity = map[string]int32{}
		}
		cfg.Capacity[alias] = n
	}
	return nil
}

func (cfg *prepareConfig) validate() error {
	if cfg.From == "" {
		return usageErrorf("--from FILE (or --from neo4j) is required")
	}
	if cfg.Size < 0 {
		return usageErrorf("--size must not be negative")
	}
	if _, err := parsePriority(cfg.Priority); err != nil {
		return err
	}
	if cfg.From != FromNeo4j && (len(cfg.Types) > 0 || cfg.StaleAfter != "") {
		return usageErrorf("--types and --stale-after select from the knowledge graph: use them with --from neo4j")
	}
	if cfg.StaleAfter != "" {
		if _, err := parseAge(cfg.StaleAfter); err != nil {
			return err
		}
	}
	return nil
}

// parseAge reads a staleness window: a Go duration ("36h") or whole days or weeks ("30d", "2w"),
// the units re-enrichment is thought of in.
func parseAge(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if n, unit := strings.TrimRight(s, "dw"), strings.TrimLeft(s, "0123456789"); (unit == "d" || unit == "w") && n != "" {
		var v int64
		v, err = strconv.ParseInt(n, 10, 32)
		d = time.Duration(v) * 24 * time.Hour
		if unit == "w" {
			d *= 7
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 {
		return 0, usageErrorf("--stale-after must be a positive age like 30d, 2w or 36h, not %q", s)
	}
	return d, nil
}

func parsePriority(s string) (enrichv1.Priority, error) {
	switch strings.ToLower(s) {
	case "high":
		return enrichv1.Priority_PRIORITY_HIGH, nil
	case "normal", "":
		return enrichv1.Priority_PRIORITY_NORMAL, nil
	case "low":
		return enrichv1.Priority_PRIORITY_LOW, nil
	}
	return 0, usageErrorf("--priority must be high, normal or low, not %q", s)
}

func (c *cli) prepareCommand() *cobra.Command {
	var cfg prepareConfig
	cmd := &cobra.Command{
		Use:   "prepare --from FILE|neo4j",
		Short: "Classify an entity file, or select from the knowledge graph, into a new batch; prints the batch id",
		Long: `Creates a batch from an entity file, or with --from neo4j from the coordinator's
knowledge graph: entity nodes of the --types given (labels from the coordinator's
neo4j.labels), of at least --priority, not enriched within --stale-after, most
important and stalest (never enriched first) first, up to each instance type's
batch capacity and --size.`,
		Example: `  B=$(enrichctl prepare --from entities.csv --instance3=10)
  enrichctl launch "$B" --wait
  enrichctl prepare --from neo4j --types Club,Person --priority high --stale-after 30d --size 90`,
		Args: exactArgs(),
		RunE: c.action(func(cmd *cobra.Command, _ []string) error {
			if err := cfg.readCapacityFlags(cmd); err != nil {
				return err
			}
			if err := cfg.validate(); err != nil {
				return err
			}
			return c.withClient(func(client enrichv1.ControlServiceClient) error {
				ctx, cancel := c.unary()
				defer cancel()
				p := c.printer()
				resp, err := prepare(ctx, client, cfg, p)
				if err != nil {
					return err
				}
				if p.json {
					return p.printJSON(resp)
				}
				_, err = fmt.Fprintln(p.out, resp.GetBatch().GetId())
				return err
			})
		}),
	}
	cfg.addFlags(cmd)
	return cmd
}

// prepare reads cfg.From and creates a batch from it. Its human summary
// goes to errw in text mode so stdout holds what the caller prints.
func prepare(ctx context.Context, client enrichv1.ControlServiceClient, cfg prepareConfig, p *printer) (*enrichv1.PrepareBatchResponse, error) {
	prio, err := parsePriority(cfg.Priority)
	if err != nil {
		return nil, err
	}
	req := &enrichv1.PrepareBatchRequest{Source: cfg.From, Size: cfg.Size, DefaultPriority: prio, Capacity: cfg.Capacity}
	if cfg.From == FromNeo4j {
		src := &enrichv1.Neo4JSource{EntityTypes: cfg.Types}
		if cfg.priorityGiven {
			src.MinPriority = prio
		}
		if cfg.StaleAfter != "" {
			age, err := parseAge(cfg.StaleAfter)
			if err != nil {
				return nil, err
			}
			src.StaleAfter = durationpb.New(age)
		}
		req.Neo4JSource = src
	} else if req.Entities, err = entityfile.Read(cfg.From); err != nil {
		return nil, err
	}
	resp, err := client.PrepareBatch(ctx, req)
	if err != nil {
		if st, ok := status.FromError(err); ok && st.Code() == codes.InvalidArgument {
			return nil, status.Error(codes.InvalidArgument, rewriteLineRefs(cfg.From, st.Message()))
		}
		return nil, err
	}
	if !p.json {
		writePrepareSummary(p, cfg, resp)
	}
	return resp, nil
}

// lineRef matches the coordinator's "line N: " prefix of an input problem.
var lineRef = regexp.MustCompile(`(?m)^line (\d+): `)

// rewriteLineRefs turns the coordinator's "line N: msg" lines into
// "FILE:N: msg", the form editors and entityfile's own errors use.
func rewriteLineRefs(file, msg string) string {
	return lineRef.ReplaceAllStringFunc(msg, func(m string) string {
		n := lineRef.FindStringSubmatch(m)[1]
		return file + ":" + n + ": "
	})
}

func writePrepareSummary(p *printer, cfg prepareConfig, resp *enrichv1.PrepareBatchResponse) {
	b := resp.GetBatch()
	var total int32
	var parts []string
	for _, ip := range b.GetInstances() {
		total += ip.GetTotal()
		parts = append(parts, fmt.Sprintf("%s %d", ip.GetInstanceType(), ip.GetTotal()))
	}
	fmt.Fprintf(p.errw, "prepared batch %s from %s: %d entities (%s)\n", b.GetId(), cmp.Or(b.GetSource(), cfg.From), total, strings.Join(parts, ", "))
	sizeReached := cfg.Size > 0 && total >= cfg.Size
	counts := map[string]int32{}
	for _, ip := range b.GetInstances() {
		counts[ip.GetInstanceType()] = ip.GetTotal()
	}
	for _, name := range leftOutOrder(b, resp.GetLeftOut()) {
		n := resp.GetLeftOut()[name]
		// The response does not carry capacities; a type that lost entities
		// took exactly its capacity, unless the batch size stopped it first.
		limit := fmt.Sprintf("batch capacity %d", counts[name])
		if sizeReached {
			limit = fmt.Sprintf("batch size %d", cfg.Size)
		}
		fmt.Fprintf(p.errw, "%s: %d entities left out (%s)\n", name, n, limit)
	}
}

// leftOutOrder lists left-out instance types in the batch's order, then any
// type that has no item in the batch at all (capacity 0).
func leftOutOrder(b *enrichv1.Batch, leftOut map[string]int32) []string {
	var out []string
	seen := map[string]bool{}
	for _, ip := range b.GetInstances() {
		if leftOut[ip.GetInstanceType()] > 0 {
			out = append(out, ip.GetInstanceType())
		}
		seen[ip.GetInstanceType()] = true
	}
	var rest []string
	for name, n := range leftOut {
		if !seen[name] && n > 0 {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

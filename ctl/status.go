package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

type statusConfig struct {
	Batch  string // empty: the newest batch
	Failed bool
}

// stderrTailLines is how much of a failure's stderr status --failed shows.
const stderrTailLines = 10

func (c *cli) statusCommand() *cobra.Command {
	var cfg statusConfig
	cmd := &cobra.Command{
		Use:   "status [BATCH]",
		Short: "Show a batch's progress per instance type (default: the newest batch)",
		Args:  cobra.MaximumNArgs(1),
		RunE: c.action(func(_ *cobra.Command, args []string) error {
			if len(args) == 1 {
				cfg.Batch = args[0]
			}
			return c.withClient(func(client enrichv1.ControlServiceClient) error {
				ctx, cancel := c.unary()
				defer cancel()
				return batchStatus(ctx, client, cfg, c.printer())
			})
		}),
	}
	cmd.Flags().BoolVar(&cfg.Failed, "failed", false, "also list failed entities with their last error and stderr")
	return cmd
}

// batchStatus prints a batch and, with cfg.Failed, its failed items. In
// json mode that is the GetBatch answer, with a "failedItems" list added
// under --failed so it stays one document.
func batchStatus(ctx context.Context, client enrichv1.ControlServiceClient, cfg statusConfig, p *printer) error {
	b, err := findBatch(ctx, client, cfg.Batch)
	if err != nil {
		return err
	}
	var failed []*enrichv1.Item
	if cfg.Failed {
		resp, err := client.ListItems(ctx, &enrichv1.ListItemsRequest{BatchId: b.GetId(), States: []enrichv1.ItemState{enrichv1.ItemState_ITEM_STATE_FAILED}})
		if err != nil {
			return err
		}
		failed = resp.GetItems()
	}
	if p.json {
		if !cfg.Failed {
			return p.printJSON(&enrichv1.GetBatchResponse{Batch: b})
		}
		return printStatusWithFailed(p, b, failed)
	}
	if err := writeBatch(p.out, b); err != nil {
		return err
	}
	if cfg.Failed {
		writeFailed(p, failed)
	}
	return nil
}

// findBatch gets batch id, or the newest batch when id is empty.
func findBatch(ctx context.Context, client enrichv1.ControlServiceClient, id string) (*enrichv1.Batch, error) {
	if id == "" {
		resp, err := client.ListBatches(ctx, &enrichv1.ListBatchesRequest{Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(resp.GetBatches()) == 0 {
			return nil, errors.New("no batches yet: create one with enrichctl prepare --from FILE")
		}
		return resp.GetBatches()[0], nil
	}
	resp, err := client.GetBatch(ctx, &enrichv1.GetBatchRequest{BatchId: id})
	if err != nil {
		return nil, err
	}
	return resp.GetBatch(), nil
}

func writeFailed(p *printer, items []*enrichv1.Item) {
	fmt.Fprintf(p.out, "\nfailed entities: %d\n", len(items))
	for _, it := range items {
		e := it.GetEntity()
		fmt.Fprintf(p.out, "\n%s %q (%s) attempts %d/%d\n", e.GetId(), e.GetName(), it.GetInstanceType(), it.GetAttempt(), it.GetMaxAttempts())
		fmt.Fprintf(p.out, "  error: %s\n", orDash(it.GetLastError()))
		if tail := lastLines(it.GetStderrTail(), stderrTailLines); tail != "" {
			fmt.Fprintln(p.out, "  stderr:")
			for _, line := range strings.Split(tail, "\n") {
				fmt.Fprintf(p.out, "    %s\n", line)
			}
		}
	}
}

// lastLines keeps the last n lines of s, without trailing blank lines.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\r\n\t "), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func printStatusWithFailed(p *printer, b *enrichv1.Batch, failed []*enrichv1.Item) error {
	doc := struct {
		Batch       json.RawMessage   `json:"batch"`
		FailedItems []json.RawMessage `json:"failedItems"`
	}{FailedItems: []json.RawMessage{}}
	var err error
	if doc.Batch, err = jsonLine.Marshal(b); err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	for _, it := range failed {
		raw, err := jsonLine.Marshal(it)
		if err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		doc.FailedItems = append(doc.FailedItems, raw)
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	_, err = fmt.Fprintf(p.out, "%s\n", out)
	return err
}

// consolidationState is the status line of a batch's consolidation: "-" while the batch runs,
// then pending, done with its time, or failed with the reason and what happens next.
func consolidationState(b *enrichv1.Batch) string {
	if at := b.GetConsolidatedAt(); at.IsValid() && b.GetConsolidationError() == "" {
		return "done " + fmtTime(at)
	}
	if e := b.GetConsolidationError(); e != "" {
		// One line: a driver's error may span several.
		e = strings.Join(strings.Fields(e), " ")
		if at := b.GetConsolidationRetryAt(); at.IsValid() {
			return fmt.Sprintf("failed: %s (results are kept; the coordinator tries again at %s)", e, fmtTime(at))
		}
		return fmt.Sprintf("failed: %s (results are kept; run: enrichctl consolidate %s)", e, b.GetId())
	}
	switch b.GetState() {
	case enrichv1.BatchState_BATCH_STATE_COMPLETED, enrichv1.BatchState_BATCH_STATE_COMPLETED_WITH_FAILURES,
		enrichv1.BatchState_BATCH_STATE_CANCELLED:
		return "pending"
	}
	return "-"
}

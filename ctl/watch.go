package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

type watchConfig struct {
	Batch string
}

func (c *cli) watchCommand() *cobra.Command {
	var cfg watchConfig
	return &cobra.Command{
		Use:   "watch BATCH",
		Short: "Follow a batch's progress until it ends; exit 3 on failures, 4 if cancelled, 5 if out of budget",
		Args:  exactArgs("BATCH"),
		RunE: c.action(func(_ *cobra.Command, args []string) error {
			cfg.Batch = args[0]
			return c.withClient(func(client enrichv1.ControlServiceClient) error {
				return watch(c.ctx, client, cfg, c.printer())
			})
		}),
	}
}

// watchRenderer shows the updates of one watch.
type watchRenderer interface {
	update(b *enrichv1.Batch) error
	// tick lets a renderer show an update it held back.
	tick() error
	// finish shows the last update after the stream ended.
	finish(b *enrichv1.Batch) error
	// abort stops rendering after an error.
	abort()
}

// lineInterval bounds how often the plain renderer prints progress, so a
// log of a large batch stays readable; state changes always print.
const lineInterval = time.Second

// watch follows cfg.Batch until the coordinator ends the stream (the batch
// ended and was consolidated), then prints a summary. The error carries the
// exit code of the final state.
func watch(ctx context.Context, client enrichv1.ControlServiceClient, cfg watchConfig, p *printer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.WatchBatch(ctx, &enrichv1.WatchBatchRequest{BatchId: cfg.Batch})
	if err != nil {
		return err
	}
	var r watchRenderer
	switch {
	case p.json:
		r = jsonRenderer{p}
	case barsFit(p.out):
		r = newBarRenderer(p.out, p.now)
	default:
		r = &lineRenderer{p: p}
	}

	updates := make(chan *enrichv1.Batch)
	errc := make(chan error, 1)
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case updates <- resp.GetBatch():
			case <-ctx.Done():
				return
			}
		}
	}()

	tick := time.NewTicker(lineInterval / 4)
	defer tick.Stop()
	var last *enrichv1.Batch
	for {
		select {
		case b := <-updates:
			last = b
			if err := r.update(b); err != nil {
				r.abort()
				return err
			}
		case <-tick.C:
			if err := r.tick(); err != nil {
				r.abort()
				return err
			}
		case err := <-errc:
			if !errors.Is(err, io.EOF) {
				r.abort()
				return err
			}
			return watchEnded(r, last, p)
		}
	}
}

func watchEnded(r watchRenderer, last *enrichv1.Batch, p *printer) error {
	if last == nil {
		r.abort()
		return errors.New("the coordinator ended the watch without sending the batch")
	}
	if err := r.finish(last); err != nil {
		return err
	}
	if !batchEnded(last.GetState()) {
		return fmt.Errorf("the coordinator ended the watch while batch %s was %s", last.GetId(), stateName(last.GetState()))
	}
	if !p.json {
		fmt.Fprintln(p.out)
		if err := writeSummary(p.out, last); err != nil {
			return err
		}
	}
	if code := batchExitCode(last.GetState()); code != ExitOK {
		return &ExitError{Code: code}
	}
	return nil
}

// minBarWidth is the narrowest terminal the bars are drawn on: mpb draws
// nothing at all on a terminal reporting no width (some ptys), so those get
// plain lines.
const minBarWidth = 60

// barsFit reports whether w is a terminal wide enough for live bars.
func barsFit(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false
	}
	width, _, err := term.GetSize(int(f.Fd()))
	return err == nil && width >= minBarWidth
}

// jsonRenderer prints every update as one JSON object per line.
type jsonRenderer struct{ p *printer }

func (r jsonRenderer) update(b *enrichv1.Batch) error {
	return r.p.printJSONLine(&enrichv1.WatchBatchResponse{Batch: b})
}
func (jsonRenderer) tick() error                  { return nil }
func (jsonRenderer) finish(*enrichv1.Batch) error { return nil }
func (jsonRenderer) abort()                       {}

// lineRenderer prints a line per update for logs and pipes, at most one a
// lineInterval plus every state change.
type lineRenderer struct {
	p         *printer
	printed   bool
	lastState enrichv1.BatchState
	lastPrint time.Time
	held      *enrichv1.Batch
	waiting   map[string]bool
}

func (r *lineRenderer) update(b *enrichv1.Batch) error {
	now := r.p.now()
	if !r.printed || b.GetState() != r.lastState || now.Sub(r.lastPrint) >= lineInterval {
		return r.print(b, now)
	}
	r.held = b
	return nil
}

func (r *lineRenderer) tick() error {
	now := r.p.now()
	if r.held != nil && now.Sub(r.lastPrint) >= lineInterval {
		return r.print(r.held, now)
	}
	return nil
}

func (r *lineRenderer) finish(*enrichv1.Batch) error {
	if r.held != nil {
		return r.print(r.held, r.p.now())
	}
	return nil
}

func (*lineRenderer) abort() {}

func (r *lineRenderer) print(b *enrichv1.Batch, now time.Time) error {
	stateChanged := !r.printed || b.GetState() != r.lastState
	r.printed, r.lastState, r.lastPrint, r.held = true, b.GetState(), now, nil
	if _, err := fmt.Fprintln(r.p.out, progressLine(b, now)); err != nil {
		return err
	}
	if stateChanged && b.GetState() == enrichv1.BatchState_BATCH_STATE_PREPARED {
		fmt.Fprintf(r.p.out, "batch %s is prepared but not launched; waiting for: enrichctl launch %s\n", b.GetId(), b.GetId())
	}
	// Say it when an instance type starts waiting, not on every line.
	if r.waiting == nil {
		r.waiting = map[string]bool{}
	}
	for _, ip := range b.GetInstances() {
		name := ip.GetInstanceType()
		if ip.GetWaitingForAgent() && !r.waiting[name] {
			fmt.Fprintln(r.p.out, waitingNote(name))
		}
		r.waiting[name] = ip.GetWaitingForAgent()
	}
	return nil
}

// progressLine is one plain progress line:
// "2026-01-08T12:00:03Z running entities 12/50 ok=12 failed=0 retrying=0 inflight=4 | persons ...".
func progressLine(b *enrichv1.Batch, now time.Time) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s", now.UTC().Format(time.RFC3339), stateName(b.GetState()))
	for i, ip := range b.GetInstances() {
		if i > 0 {
			sb.WriteString(" |")
		}
		fmt.Fprintf(&sb, " %s %d/%d ok=%d failed=%d retrying=%d inflight=%d", ip.GetInstanceType(), ended(ip), selected(ip),
			ip.GetSucceeded(), ip.GetFailed(), ip.GetRetrying(), ip.GetLeased())
		if ip.GetSkipped() > 0 {
			fmt.Fprintf(&sb, " skipped=%d", ip.GetSkipped())
		}
		if ip.GetCancelled() > 0 {
			fmt.Fprintf(&sb, " cancelled=%d", ip.GetCancelled())
		}
		fmt.Fprintf(&sb, " %s", rateETACost(ip, elapsed(b, now)))
	}
	if b.GetCostUsd() > 0 {
		fmt.Fprintf(&sb, " | cost=$%.2f", b.GetCostUsd())
	}
	return sb.String()
}

// elapsed is the time since the batch was launched (to its end once it ended).
func elapsed(b *enrichv1.Batch, now time.Time) time.Duration {
	if !b.GetLaunchedAt().IsValid() {
		return 0
	}
	end := now
	if f := b.GetFinishedAt(); f.IsValid() {
		end = f.AsTime()
	}
	return max(end.Sub(b.GetLaunchedAt().AsTime()), 0)
}

// rateETACost is the throughput, ETA and running cost of one instance type:
// "rate=12.0/min eta=4m10s cost=$1.20". The ETA comes from the coordinator,
// which knows the type's median run time and the slots serving it; "eta=?"
// means there is no basis yet (no finished run, or no agent).
func rateETACost(ip *enrichv1.InstanceProgress, elapsed time.Duration) string {
	rate := 0.0
	if elapsed > 0 {
		rate = float64(ended(ip)) / elapsed.Minutes()
	}
	eta := "?"
	switch {
	case ended(ip) >= selected(ip):
		eta = "done"
	case ip.GetEta() != nil:
		eta = fmtETA(ip.GetEta().AsDuration())
	}
	return fmt.Sprintf("rate=%.1f/min eta=%s cost=$%.2f", rate, eta, ip.GetCostUsd())
}

// fmtETA rounds an estimate to what a person can use: seconds under a
// minute, then minutes, then hours and minutes.
func fmtETA(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return d.Round(10 * time.Second).String()
	default:
		return d.Round(time.Minute).String()
	}
}

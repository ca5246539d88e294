package ctl

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// barRenderer draws one live progress bar per instance type on a terminal.
type barRenderer struct {
	prog    *mpb.Progress
	now     func() time.Time
	printed bool
	state   enrichv1.BatchState
	bars    map[string]*mpb.Bar

	// mpb draws from its own goroutine, so decorators read cur under mu.
	mu  sync.Mutex
	cur map[string]*enrichv1.InstanceProgress
}

func newBarRenderer(w io.Writer, now func() time.Time) *barRenderer {
	return &barRenderer{
		// Auto refresh is mpb's default on a terminal only; forcing it keeps
		// the renderer drawing on any writer, which tests rely on.
		prog: mpb.New(mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithAutoRefresh()),
		now:  now,
		bars: map[string]*mpb.Bar{},
		cur:  map[string]*enrichv1.InstanceProgress{},
	}
}

func (r *barRenderer) update(b *enrichv1.Batch) error {
	r.mu.Lock()
	for _, ip := range b.GetInstances() {
		r.cur[ip.GetInstanceType()] = ip
	}
	r.mu.Unlock()
	if !r.printed || b.GetState() != r.state {
		// Written through the container, the line lands above the bars.
		fmt.Fprintf(r.prog, "%s batch %s %s\n", r.now().UTC().Format(time.RFC3339), b.GetId(), stateName(b.GetState()))
		r.printed, r.state = true, b.GetState()
	}
	start := r.now()
	if ts := b.GetLaunchedAt(); ts.IsValid() {
		start = ts.AsTime()
	}
	for _, ip := range b.GetInstances() {
		name := ip.GetInstanceType()
		bar, ok := r.bars[name]
		if !ok {
			bar = r.addBar(name, start)
			r.bars[name] = bar
		}
		bar.SetTotal(int64(selected(ip)), false)
		bar.SetCurrent(int64(ended(ip)))
	}
	return nil
}

// addBar makes a bar that never completes by itself (total 0 at
// creation): items can come back (retry, later launches) until the batch ends.
func (r *barRenderer) addBar(name string, start time.Time) *mpb.Bar {
	return r.prog.AddBar(0,
		mpb.PrependDecorators(
			decor.Name(name, decor.WCSyncSpaceR),
			decor.Any(func(decor.Statistics) string {
				ip := r.progress(name)
				return fmt.Sprintf("%d/%d", ended(ip), selected(ip))
			}, decor.WCSyncSpace),
		),
		mpb.AppendDecorators(
			decor.Any(func(decor.Statistics) string {
				ip := r.progress(name)
				s := fmt.Sprintf("ok=%d failed=%d retrying=%d inflight=%d %s", ip.GetSucceeded(), ip.GetFailed(), ip.GetRetrying(),
					ip.GetLeased(), rateETACost(ip, r.now().Sub(start)))
				if ip.GetWaitingForAgent() {
					s += " " + waitingNote(name)
				}
				return s
			}, decor.WCSyncSpaceR),
			decor.NewElapsed(decor.ET_STYLE_GO, start, decor.WCSyncSpace),
		),
	)
}

func (r *barRenderer) progress(name string) *enrichv1.InstanceProgress {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur[name]
}

func (*barRenderer) tick() error { return nil }

// finish completes full bars and leaves others as they stand (a cancelled
// batch, skipped instance types), then waits for the last redraw.
func (r *barRenderer) finish(b *enrichv1.Batch) error {
	if err := r.update(b); err != nil {
		return err
	}
	// Every bar must complete or abort, or Wait never returns.
	for name, bar := range r.bars {
		ip := r.progress(name)
		if ended(ip) >= selected(ip) {
			bar.EnableTriggerComplete()
		} else {
			bar.Abort(false)
		}
	}
	r.prog.Wait()
	return nil
}

func (r *barRenderer) abort() { r.prog.Shutdown() }

package main

import (
	"cmp"
	"container/heap"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"time"
)

// workRange is the simulated research time per instance type: the seed's 2-5, 5-10 and 3-7
// minutes, scaled down 1000x so a batch of 90 takes seconds.
var workRange = map[string][2]time.Duration{
	"entities": {120 * time.Millisecond, 300 * time.Millisecond},
	"persons":  {300 * time.Millisecond, 600 * time.Millisecond},
	"leagues":  {180 * time.Millisecond, 420 * time.Millisecond},
}

// seedCaps is the seed's resource_allocation.<type>.max_concurrent.
var seedCaps = map[string]int{"entities": 50, "persons": 25, "leagues": 15}

// workFor draws one entity's work time, uniform in its type's range at millisecond grain. The
// draw depends only on (seed, entity id), not on who asks or in which order, so the benchmark
// (which computes the ideal) and the agents (which sleep it) get the same number.
func workFor(seed uint64, instanceType, entityID string) (time.Duration, error) {
	r, ok := workRange[instanceType]
	if !ok {
		return 0, fmt.Errorf("no work range for instance type %q", instanceType)
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(entityID))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	steps := int64((r[1] - r[0]) / time.Millisecond)
	return r[0] + time.Duration(rng.Int64N(steps+1))*time.Millisecond, nil
}

// meanWork is the middle of typ's range: what a coordinator could know in advance.
func meanWork(typ string) time.Duration {
	r := workRange[typ]
	return (r[0] + r[1]) / 2
}

// job is one item's known work, in the order the coordinator leases items.
type job struct {
	typ      string
	work     time.Duration
	priority int // higher first; the coordinator leases by priority before anything else
}

// bound is the ideal makespan and what it came from.
type bound struct {
	ideal     time.Duration
	effective int // slots that can be busy at once: total slots, capped by per-type caps and items
	total     time.Duration
	longest   time.Duration
}

// idealMakespan is a lower bound on any schedule's makespan with zero overhead. Three bounds
// hold for every schedule, so their maximum does too:
//   - no entity finishes before its own work: the longest work;
//   - at most `effective` items run at once, where effective = min(slots, sum over types of
//     min(cap, items of the type)): the total work spread over them;
//   - a type runs at most min(cap, slots) items at once: its work spread over them.
//
// It ignores that work comes in indivisible pieces, so even a perfect scheduler may not reach it.
func idealMakespan(jobs []job, slots int, caps map[string]int) bound {
	var b bound
	perType := map[string]time.Duration{}
	count := map[string]int{}
	for _, j := range jobs {
		b.total += j.work
		b.longest = max(b.longest, j.work)
		perType[j.typ] += j.work
		count[j.typ]++
	}
	room := 0
	for typ, n := range count {
		room += capOf(caps, typ, n)
	}
	b.effective = min(slots, room)
	b.ideal = b.longest
	if b.effective > 0 {
		b.ideal = max(b.ideal, b.total/time.Duration(b.effective))
	}
	for typ, w := range perType {
		b.ideal = max(b.ideal, w/time.Duration(min(slots, capOf(caps, typ, count[typ]))))
	}
	return b
}

// capOf is how many items of typ may run at once: its cap, or all n when it has none.
func capOf(caps map[string]int, typ string, n int) int {
	if c := caps[typ]; c > 0 {
		return min(c, n)
	}
	return n
}

// listSchedule is the makespan of greedy list scheduling with zero overhead: whenever a slot is
// free, it takes the first job in order whose type is under its cap, which is what the
// coordinator's claim does. The gap between it and the ideal is what the order costs; the gap
// between the measured makespan and it is what the system's overhead costs.
func listSchedule(jobs []job, slots int, caps map[string]int) time.Duration {
	pending := slices.Clone(jobs)
	running := &endHeap{}
	inFlight := map[string]int{}
	var now, makespan time.Duration
	for len(pending) > 0 || running.Len() > 0 {
		for running.Len() < slots {
			i := slices.IndexFunc(pending, func(j job) bool {
				return caps[j.typ] <= 0 || inFlight[j.typ] < caps[j.typ]
			})
			if i < 0 {
				break
			}
			j := pending[i]
			pending = slices.Delete(pending, i, i+1)
			inFlight[j.typ]++
			heap.Push(running, ending{at: now + j.work, typ: j.typ})
			makespan = max(makespan, now+j.work)
		}
		if running.Len() == 0 {
			break // only reachable with a zero cap on a type that has jobs
		}
		e := heap.Pop(running).(ending)
		now = e.at
		inFlight[e.typ]--
	}
	return makespan
}

// typeFirst orders jobs by priority, then by their type's mean work, longest type first, keeping
// the order within a type: the order a coordinator knowing only per-type durations could use.
func typeFirst(jobs []job) []job {
	out := slices.Clone(jobs)
	slices.SortStableFunc(out, func(a, b job) int {
		return cmp.Or(cmp.Compare(b.priority, a.priority), cmp.Compare(meanWork(b.typ), meanWork(a.typ)))
	})
	return out
}

// longestFirst orders jobs by decreasing work (LPT), which bounds greedy list scheduling to
// 4/3 of the optimum instead of 2.
func longestFirst(jobs []job) []job {
	out := slices.Clone(jobs)
	slices.SortStableFunc(out, func(a, b job) int { return cmp.Compare(b.work, a.work) })
	return out
}

type ending struct {
	at  time.Duration
	typ string
}

type endHeap []ending

func (h endHeap) Len() int           { return len(h) }
func (h endHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h endHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *endHeap) Push(x any)        { *h = append(*h, x.(ending)) }
func (h *endHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

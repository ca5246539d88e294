package main

import (
	"cmp"
	"slices"
	"time"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// timeline is where one run's slot-time went. Each slot that ran anything spans launch to
// finish, so usedSlots × makespan = work + startup + turnaround + end exactly: the makespan
// is the average slot's work plus its three kinds of idle time.
type timeline struct {
	runs      []runRecord
	usedSlots int

	work       time.Duration // runs as the agents timed them (drawn work + the dossier + timer slack)
	startup    time.Duration // launch -> a slot's first run
	turnaround time.Duration // a run's end -> the next run on the same slot, work still pending
	end        time.Duration // a slot's last run end -> the batch's finished_at

	firstStart  time.Duration   // launch -> the first run anywhere
	lastStart   time.Duration   // launch -> the last run anywhere
	tail        time.Duration   // the last run end anywhere -> finished_at
	turnarounds []time.Duration // sorted
	commitLags  []time.Duration // a run's end -> its result's commit (the item's updated_at), sorted
	overruns    []time.Duration // a run's time beyond its drawn work (timer, dossier, a busy CPU), sorted
	// longestAt is when the entity with the most work started: with enough slots the makespan is at least
	// that plus its work, so a long entity leased late sets the makespan.
	longestAt time.Duration
}

func newTimeline(b *enrichv1.Batch, items []*enrichv1.Item, reports []agentReport, slotsPerAgent int, seed uint64) timeline {
	launch, finish := b.GetLaunchedAt().AsTime(), b.GetFinishedAt().AsTime()
	committed := map[int64]time.Time{}
	for _, it := range items {
		committed[it.GetItemId()] = it.GetUpdatedAt().AsTime()
	}
	tl := timeline{firstStart: finish.Sub(launch)}
	var lastEnd time.Time
	var longest time.Duration
	for _, rep := range reports {
		runs := slices.Clone(rep.Runs)
		slices.SortFunc(runs, func(a, b runRecord) int { return cmp.Compare(a.StartNS, b.StartNS) })
		tl.addAgent(runs, slotsPerAgent, launch, finish)
		for _, r := range runs {
			start, end := time.Unix(0, r.StartNS), time.Unix(0, r.EndNS)
			tl.firstStart = min(tl.firstStart, start.Sub(launch))
			tl.lastStart = max(tl.lastStart, start.Sub(launch))
			if end.After(lastEnd) {
				lastEnd = end
			}
			if w, err := workFor(seed, r.Type, r.Entity); err == nil {
				tl.overruns = append(tl.overruns, end.Sub(start)-w)
				if w > longest {
					longest, tl.longestAt = w, start.Sub(launch)
				}
			}
			if c, ok := committed[r.ItemID]; ok {
				tl.commitLags = append(tl.commitLags, c.Sub(end))
			}
		}
		tl.runs = append(tl.runs, runs...)
	}
	tl.tail = finish.Sub(lastEnd)
	slices.Sort(tl.turnarounds)
	slices.Sort(tl.commitLags)
	slices.Sort(tl.overruns)
	return tl
}

// addAgent puts one agent's runs (by start time) on its slots. The agent holds one credit per
// free slot and the coordinator serves credits in order, so a new run takes the slot that has
// been free longest; a slot never used yet has been free since launch.
func (tl *timeline) addAgent(runs []runRecord, slots int, launch, finish time.Time) {
	freeAt := make([]time.Time, 0, slots) // per used slot: when its last run ended
	for _, r := range runs {
		start, end := time.Unix(0, r.StartNS), time.Unix(0, r.EndNS)
		tl.work += end.Sub(start)
		if len(freeAt) < slots {
			tl.startup += start.Sub(launch)
			freeAt = append(freeAt, end)
			continue
		}
		i := 0
		for k := range freeAt {
			if freeAt[k].Before(freeAt[i]) {
				i = k
			}
		}
		gap := start.Sub(freeAt[i])
		tl.turnaround += gap
		tl.turnarounds = append(tl.turnarounds, gap)
		freeAt[i] = end
	}
	for _, f := range freeAt {
		tl.end += finish.Sub(f)
	}
	tl.usedSlots += len(freeAt)
}

// perSlot is d spread over the used slots: its share of the makespan.
func (tl timeline) perSlot(d time.Duration) time.Duration {
	if tl.usedSlots == 0 {
		return 0
	}
	return d / time.Duration(tl.usedSlots)
}

func quantile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(float64(len(sorted)-1)*p)]
}

// Command scaling measures how the makespan of the seed's batch scales with the number of agents:
// the 90 entities of examples/entities.jsonl (50 entities, 25 persons, 15 leagues), each with a
// work time drawn per entity from the seed's 2-5 / 5-10 / 3-7 minute ranges scaled down 1000x,
// on 1, 3, 9 and 27 agent processes against a real coordinator process over loopback.
//
// For each agent count it starts a fresh coordinator (SQLite, the seed's per-type caps
// max_concurrent 50/25/15), starts the agents, prepares and launches the batch and reads the
// makespan from the coordinator's own timestamps (launched_at to finished_at). It prints that,
// the ideal makespan computed from the drawn work (see idealMakespan) and their ratio, then
// where the gap went. Agents are this same binary started with -agent.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	var (
		agentMode   = flag.Bool("agent", false, "run as one benchmark agent (internal)")
		coordinator = flag.String("coordinator", "", "coordinator address (agent mode)")
		id          = flag.String("id", "bench", "agent id (agent mode)")
		seed        = flag.Uint64("seed", 1, "seed of the per-entity work draws")
		slots       = flag.Int("slots", 4, "slots per agent (4 is enrich-agent's default)")
		agentList   = flag.String("agents", "1,3,9,27", "agent counts to run, comma separated")
		entities    = flag.String("entities", "examples/entities.jsonl", "entity file of the batch")
		order       = flag.String("order", "file", "lease order: file (the file's priorities, then file order, as an operator would launch it) or longest (longest work first, priorities ignored)")
		bin         = flag.String("bin", "bin", "folder holding enrich-coordinator")
	)
	flag.Parse()
	var err error
	if *agentMode {
		err = runAgent(*coordinator, *id, *slots, *seed)
	} else {
		var counts []int
		counts, err = parseCounts(*agentList)
		if err == nil {
			err = runAll(setup{bin: *bin, entities: *entities, order: *order, seed: *seed, slots: *slots}, counts)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-agents:", err)
		os.Exit(1)
	}
}

func parseCounts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-agents %q: want positive counts separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// faultrunner stands in for a research process in fault tests: run by the agent's exec runner,
// it succeeds, fails, prints garbage, prints a schema-invalid dossier or hangs, as its flags and
// a seeded hash of (entity, attempt) decide, so a test run is reproducible.
//
//	faultrunner -seed 7 -fail 0.1 -garbage 0.05 -invalid 0.05 -hang 0.02 -delay 10ms-50ms \
//	    -plan plan.txt -pids DIR
//
// A plan file overrides the dice per entity: lines "ENTITY_ID mode,mode,..." give the mode of
// attempt 1, 2, ...; the last mode repeats. Modes: ok, fail, permanent, garbage, invalid, hang,
// slow. A hanging run writes its pid and its child's pid into -pids DIR so a test can check that
// both were killed.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sportsintel/enrich/agent/runner"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-sleep-forever" {
		// The child a hanging run leaves behind: it must die with its process group.
		time.Sleep(time.Hour)
		return
	}
	seed := flag.Uint64("seed", 1, "seed of the dice")
	fail := flag.Float64("fail", 0, "probability of a retryable failure (exit 1)")
	garbage := flag.Float64("garbage", 0, "probability of printing garbage instead of JSON")
	invalid := flag.Float64("invalid", 0, "probability of printing a schema-invalid dossier")
	hang := flag.Float64("hang", 0, "probability of hanging until killed")
	delay := flag.String("delay", "0", "work time: D or MIN-MAX")
	plan := flag.String("plan", "", "file of per-entity modes")
	pids := flag.String("pids", "", "folder where hanging runs record their pids")
	flag.Parse()

	// The prompt arrives on stdin; read it all as a real runner would.
	_, _ = io.Copy(io.Discard, os.Stdin)
	entityID := os.Getenv("ENRICH_ENTITY_ID")
	attempt, _ := strconv.Atoi(os.Getenv("ENRICH_ATTEMPT"))
	roll := dice(*seed, entityID, attempt)

	mode := "ok"
	switch {
	case roll < *fail:
		mode = "fail"
	case roll < *fail+*garbage:
		mode = "garbage"
	case roll < *fail+*garbage+*invalid:
		mode = "invalid"
	case roll < *fail+*garbage+*invalid+*hang:
		mode = "hang"
	}
	if *plan != "" {
		if m, ok := planned(*plan, entityID, attempt); ok {
			mode = m
		}
	}
	time.Sleep(workTime(*delay, roll))

	switch mode {
	case "ok":
		printDossier()
	case "slow":
		time.Sleep(3 * time.Second)
		printDossier()
	case "fail":
		fmt.Fprintf(os.Stderr, "simulated crash of the research process for %s (attempt %d)\n", entityID, attempt)
		os.Exit(1)
	case "permanent":
		fmt.Fprintf(os.Stderr, "simulated bad request for %s\n", entityID)
		os.Exit(runner.ExitDataErr)
	case "garbage":
		fmt.Println("I'm sorry, I could not find anything about that club. {not json")
	case "invalid":
		fmt.Printf(`{"entity_id":%q,"summary":42}`+"\n", entityID)
	case "hang":
		child := exec.Command(os.Args[0], "-sleep-forever")
		// Dies with this process, so a drill that kills the agent leaves nothing behind either.
		child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := child.Start(); err != nil {
			fatal("start child: %v", err)
		}
		if *pids != "" {
			name := filepath.Join(*pids, fmt.Sprintf("%s-%d.pids", sanitize(entityID), attempt))
			if err := os.WriteFile(name, fmt.Appendf(nil, "%d %d\n", os.Getpid(), child.Process.Pid), 0o644); err != nil {
				fatal("record pids: %v", err)
			}
		}
		time.Sleep(time.Hour)
	default:
		fatal("unknown mode %q", mode)
	}
}

func printDossier() {
	var e enrichv1.Entity
	if err := protojson.Unmarshal([]byte(os.Getenv("ENRICH_ENTITY_JSON")), &e); err != nil {
		fatal("entity: %v", err)
	}
	doc, err := runner.OfflineDossier(&e, os.Getenv("ENRICH_INSTANCE_TYPE"), os.Getenv("ENRICH_SCHEMA"), time.Now().UTC())
	if err != nil {
		fatal("dossier: %v", err)
	}
	os.Stdout.Write(doc)
}

// dice maps (seed, entity, attempt) to [0, 1).
func dice(seed uint64, entityID string, attempt int) float64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s/%d", seed, entityID, attempt)
	// FNV barely moves its high bits when only the last byte (the attempt) changes; a
	// murmur3 finaliser spreads it so attempts of one entity roll independently.
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return float64(x>>11) / float64(1<<53)
}

func workTime(spec string, roll float64) time.Duration {
	lo, hi, ranged := strings.Cut(spec, "-")
	shortest, err := time.ParseDuration(lo)
	if err != nil {
		fatal("-delay: %v", err)
	}
	if !ranged {
		return shortest
	}
	longest, err := time.ParseDuration(hi)
	if err != nil {
		fatal("-delay: %v", err)
	}
	// Reuse the roll's low digits so the delay does not correlate with the mode.
	frac := math.Mod(roll*1e6, 1)
	return shortest + time.Duration(frac*float64(longest-shortest))
}

func planned(path, entityID string, attempt int) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		fatal("plan: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		id, modes, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok || id != entityID {
			continue
		}
		list := strings.Split(modes, ",")
		return list[min(attempt, len(list))-1], true
	}
	return "", false
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == 0 {
			return '_'
		}
		return r
	}, s)
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "faultrunner: "+format+"\n", args...)
	os.Exit(2)
}

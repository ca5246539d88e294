// Command fakeclaude stands in for the claude CLI in the runner's tests. It is a real process:
// it reads its prompt on stdin, records its argv, environment, stdin and memory limit as JSON in
// $FAKE_CLAUDE_RECORD/<n>.json, then replays the result envelope the scenario in
// $FAKE_CLAUDE_SCENARIO names. Dossiers come from the files $FAKE_CLAUDE_DOSSIER (valid) and
// $FAKE_CLAUDE_BAD_DOSSIER (fails validation).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

type record struct {
	Args      []string `json:"args"`
	Env       []string `json:"env"`
	Stdin     string   `json:"stdin"`
	DataLimit string   `json:"data_limit"`
	ChildPID  int      `json:"child_pid,omitempty"`
	Cwd       string   `json:"cwd"`
	MCPConfig string   `json:"mcp_config"`
	MCPMode   string   `json:"mcp_mode"`
}

func main() {
	stdin, _ := io.ReadAll(os.Stdin)
	rec := record{Args: os.Args[1:], Env: os.Environ(), Stdin: string(stdin), DataLimit: dataLimit()}
	rec.Cwd, _ = os.Getwd()
	if p := flagValue("--mcp-config"); p != "" {
		b, _ := os.ReadFile(p)
		rec.MCPConfig = string(b)
		if st, err := os.Stat(p); err == nil {
			rec.MCPMode = st.Mode().Perm().String()
		}
	}
	resume := flagValue("--resume")
	scenario := os.Getenv("FAKE_CLAUDE_SCENARIO")

	if scenario == "hang" {
		// A grandchild in the same process group must die with the run too.
		child := exec.Command("sleep", "300")
		if err := child.Start(); err != nil {
			fail(err)
		}
		rec.ChildPID = child.Process.Pid
		save(rec)
		time.Sleep(time.Hour)
		return
	}
	save(rec)

	good, bad := readFile("FAKE_CLAUDE_DOSSIER"), readFile("FAKE_CLAUDE_BAD_DOSSIER")
	env := map[string]any{
		"type": "result", "subtype": "success", "is_error": false, "duration_ms": 183000, "duration_api_ms": 171000,
		"num_turns": 17, "session_id": "sess-" + scenario, "total_cost_usd": 0.42,
		"usage": map[string]any{"input_tokens": 1200, "output_tokens": 3400, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 5000},
	}
	exit := 0
	switch scenario {
	case "fenced":
		env["result"] = "Research complete. Here is the dossier:\n\n```json\n" + good + "\n```\n"
	case "prose":
		env["result"] = "I found these facts. The final dossier is " + good + " and that is all."
	case "structured":
		env["result"] = ""
		env["structured_output"] = json.RawMessage(good)
	case "is_error":
		env["subtype"], env["is_error"] = "error_during_execution", true
		env["result"] = `API Error: 500 {"type":"error","error":{"type":"api_error","message":"Internal server error"}}`
		exit = 1
	case "max_turns":
		env["subtype"], env["is_error"], env["num_turns"], env["total_cost_usd"] = "error_max_turns", true, 40, 1.1
		delete(env, "result")
		exit = 1
	case "budget":
		env["subtype"], env["is_error"], env["total_cost_usd"] = "error_max_budget_usd", true, 2.01
		delete(env, "result")
		exit = 1
	case "rate_limit":
		env["is_error"], env["num_turns"], env["total_cost_usd"] = true, 1, 0.0
		env["result"] = `API Error: 429 {"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}} retry-after: 30`
		exit = 1
	case "overloaded":
		fmt.Fprintln(os.Stderr, `API Error: 529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
		os.Exit(1)
	case "auth":
		env["is_error"], env["num_turns"], env["total_cost_usd"] = true, 0, 0.0
		env["result"] = "Invalid API key · Please run /login"
		exit = 1
	case "repair", "repair_fails":
		if resume == "" {
			env["result"] = "```json\n" + bad + "\n```"
		} else {
			env["session_id"], env["num_turns"], env["total_cost_usd"] = resume, 1, 0.03
			env["usage"] = map[string]any{"input_tokens": 20, "output_tokens": 900, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 7000}
			env["result"] = good
			if scenario == "repair_fails" {
				env["result"] = bad
			}
		}
	case "garbage":
		fmt.Println("Segmentation fault? This is not an envelope.")
		return
	case "huge":
		w := bufio.NewWriter(os.Stdout)
		line := strings.Repeat("x", 1<<16)
		for range 320 { // 20 MiB
			w.WriteString(line)
		}
		w.Flush()
		return
	case "leak_secret":
		fmt.Fprintf(os.Stderr, "debug: connecting with token %s\n", os.Getenv("BRIGHTDATA_API_TOKEN"))
		os.Exit(3)
	default:
		fail(fmt.Errorf("unknown scenario %q", scenario))
	}
	out, err := json.Marshal(env)
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(append(out, '\n'))
	os.Exit(exit)
}

func flagValue(name string) string {
	if i := slices.Index(os.Args, name); i >= 0 && i+1 < len(os.Args) {
		return os.Args[i+1]
	}
	return ""
}

func readFile(envName string) string {
	p := os.Getenv(envName)
	if p == "" {
		return ""
	}
	b, err := os.ReadFile(p)
	if err != nil {
		fail(err)
	}
	return strings.TrimSpace(string(b))
}

func dataLimit() string {
	b, _ := os.ReadFile("/proc/self/limits")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Max data size") {
			return strings.Join(strings.Fields(l), " ")
		}
	}
	return ""
}

func save(rec record) {
	dir := os.Getenv("FAKE_CLAUDE_RECORD")
	if dir == "" {
		return
	}
	entries, _ := os.ReadDir(dir)
	raw, _ := json.Marshal(rec)
	tmp := filepath.Join(dir, fmt.Sprintf(".%d.tmp", len(entries)))
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		fail(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, fmt.Sprintf("%d.json", len(entries)))); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fakeclaude:", err)
	os.Exit(70)
}

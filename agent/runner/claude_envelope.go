package runner

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// envelope is the result object `claude -p --output-format json` prints when a run ends.
type envelope struct {
	Type             string          `json:"type"`
	Subtype          string          `json:"subtype"`
	IsError          bool            `json:"is_error"`
	DurationMS       int64           `json:"duration_ms"`
	DurationAPIMS    int64           `json:"duration_api_ms"`
	NumTurns         int32           `json:"num_turns"`
	Result           string          `json:"result"`
	StructuredOutput json.RawMessage `json:"structured_output"`
	SessionID        string          `json:"session_id"`
	TotalCostUSD     float64         `json:"total_cost_usd"`
	TerminalReason   string          `json:"terminal_reason"`
	Usage            struct {
		InputTokens              int64 `json:"input_tokens"`
		OutputTokens             int64 `json:"output_tokens"`
		CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
		CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	} `json:"usage"`
}

// Subtypes of the result envelope that end a run early.
const (
	subtypeSuccess   = "success"
	subtypeMaxTurns  = "error_max_turns"
	subtypeMaxBudget = "error_max_budget_usd"
)

// parseEnvelope finds the result envelope in claude's stdout: the whole output, or the last line
// that is a result object (stream-json and --verbose print events before it). rateLimited
// reports a rate_limit_event seen on the way.
func parseEnvelope(out []byte) (env *envelope, rateLimited bool) {
	try := func(b []byte) *envelope {
		var e envelope
		if json.Unmarshal(b, &e) != nil || e.Type != "result" {
			return nil
		}
		return &e
	}
	trimmed := bytes.TrimSpace(out)
	if e := try(trimmed); e != nil {
		return e, false
	}
	for line := range bytes.SplitSeq(trimmed, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		if e := try(line); e != nil {
			env = e
			continue
		}
		var ev struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(line, &ev) == nil && ev.Type == "rate_limit_event" {
			rateLimited = true
		}
	}
	return env, rateLimited
}

// Markers in an error text. Claude Code reports API failures as "API Error: 429 {...}" in the
// result or on stderr; the JSON body names the error type.
var (
	rateLimitRE  = regexp.MustCompile(`(?i)\b(429|529)\b|rate[_ ]limit|overloaded|too many requests`)
	authRE       = regexp.MustCompile(`(?i)invalid api key|authentication_error|\b401\b|please run /login|not logged in|credit balance is too low|permission_error|oauth token has expired`)
	mcpConfRE    = regexp.MustCompile(`(?i)invalid mcp config|mcp config(uration)? (file )?(not found|is invalid|error)|invalid --mcp-config`)
	retryAfterRE = regexp.MustCompile(`(?i)retry[- ]after[":= ]+(\d{1,5})`)
)

// classifyText classifies an error message from claude's result or stderr.
func classifyText(s string) Class {
	switch {
	case authRE.MatchString(s), mcpConfRE.MatchString(s):
		return ClassAgentUnhealthy
	case rateLimitRE.MatchString(s):
		return ClassRateLimited
	}
	return ClassTransient
}

// retryAfter reads a "retry-after: N" hint in seconds from an error text.
func retryAfter(s string) time.Duration {
	m := retryAfterRE.FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0
	}
	return time.Duration(n) * time.Second
}

// dossierCandidate returns the answer to extract the dossier from: structured_output when the
// run used --json-schema, else the result text.
func (e *envelope) dossierCandidate() []byte {
	so := bytes.TrimSpace(e.StructuredOutput)
	if len(so) > 0 && !bytes.Equal(so, []byte("null")) {
		return so
	}
	return []byte(e.Result)
}

func (e *envelope) describe() string {
	var parts []string
	if e.Subtype != "" {
		parts = append(parts, "subtype "+e.Subtype)
	}
	if e.TerminalReason != "" {
		parts = append(parts, "terminal_reason "+e.TerminalReason)
	}
	if e.NumTurns > 0 {
		parts = append(parts, strconv.Itoa(int(e.NumTurns))+" turns")
	}
	return strings.Join(parts, ", ")
}

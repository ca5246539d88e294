package runner

import (
	"bytes"
	"encoding/json"
	"errors"
)

// ErrNoJSON is returned when runner output holds no JSON object.
var ErrNoJSON = errors.New("no JSON object found in the runner's output")

// ExtractJSON finds the dossier in a runner's output: the whole output when it is one JSON object,
// else the last ```json fenced block that parses, else the last balanced {...} that parses. Models
// often wrap their answer in prose or a fence; the last candidate is the final answer.
func ExtractJSON(out []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(out)
	if isObject(trimmed) {
		return trimmed, nil
	}
	if doc := lastFenced(trimmed); doc != nil {
		return doc, nil
	}
	if found := lastTopLevelObject(trimmed); found != nil {
		return found, nil
	}
	return nil, ErrNoJSON
}

// lastTopLevelObject scans once, tracking brace depth outside JSON strings, and returns the last
// balanced top-level {...} that parses. One pass keeps hostile output (megabytes of "{") linear,
// and an object cut off by a truncated answer never yields a fragment of its inside.
func lastTopLevelObject(b []byte) []byte {
	var found []byte
	depth, start, inString, escaped := 0, 0, false, false
	for i, c := range b {
		switch {
		case depth == 0:
			if c == '{' {
				depth, start = 1, i
			}
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 && isObject(b[start:i+1]) {
				found = b[start : i+1]
			}
		}
	}
	return found
}

func isObject(b []byte) bool {
	if len(b) < 2 || b[0] != '{' {
		return false
	}
	var v map[string]json.RawMessage
	return json.Unmarshal(b, &v) == nil
}

func lastFenced(b []byte) []byte {
	var found []byte
	rest := b
	for {
		start := bytes.Index(rest, []byte("```"))
		if start < 0 {
			return found
		}
		body := rest[start+3:]
		nl := bytes.IndexByte(body, '\n')
		if nl < 0 {
			return found
		}
		lang := bytes.TrimSpace(body[:nl])
		body = body[nl+1:]
		end := bytes.Index(body, []byte("```"))
		if end < 0 {
			return found
		}
		if cand := bytes.TrimSpace(body[:end]); (len(lang) == 0 || bytes.EqualFold(lang, []byte("json"))) && isObject(cand) {
			found = cand
		}
		rest = body[end+3:]
	}
}

package entityfile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Keys of a JSON Lines object that are fields of the entity rather than
// attributes.
const (
	keyID         = "id"
	keyType       = "type"
	keyName       = "name"
	keyPriority   = "priority"
	keyAttributes = "attributes"
)

func parseJSONL(c *collector, br *bufio.Reader) error {
	for lineNo := 1; ; lineNo++ {
		line, tooLong, err := readLine(br)
		if err != nil && err != io.EOF {
			return err
		}
		if tooLong {
			c.addf(lineNo, "%s", tooLongMsg)
		} else {
			parseJSONLine(c, lineNo, line)
		}
		if err == io.EOF {
			return nil
		}
	}
}

// readLine returns the next line without its line ending, and io.EOF with
// the last one. A line over MaxLineBytes is read to its end but not kept,
// so parsing can go on with the next line.
func readLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > MaxLineBytes+len("\r\n") {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) > MaxLineBytes {
			tooLong, line = true, nil
		}
		return line, tooLong, err
	}
}

func parseJSONLine(c *collector, lineNo int, line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] == '#' {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		c.addf(lineNo, "malformed JSON: %v", err)
		return
	}
	if rest := bytes.TrimSpace(line[dec.InputOffset():]); len(rest) > 0 {
		c.addf(lineNo, "malformed JSON: unexpected data after the object")
		return
	}
	obj, ok := v.(map[string]any)
	if !ok {
		c.addf(lineNo, "not a JSON object (got %s)", jsonKind(v))
		return
	}

	rec := record{line: lineNo}
	field := func(key string, allowNumber bool) string {
		switch x := obj[key].(type) {
		case nil:
			return ""
		case string:
			return x
		case json.Number:
			if allowNumber {
				return formatNumber(x)
			}
		}
		want := "a string"
		if allowNumber {
			want = "a string or a number"
		}
		c.addf(lineNo, "%q must be %s, got %s", key, want, jsonKind(obj[key]))
		return ""
	}
	// Numeric ids are common in exports from other databases.
	rec.id = field(keyID, true)
	rec.typ = field(keyType, false)
	rec.name = field(keyName, false)
	rec.priority = field(keyPriority, false)

	attrs := make(map[string]string)
	for k, val := range obj {
		switch k {
		case keyID, keyType, keyName, keyPriority, keyAttributes:
			continue
		}
		if s, ok := formatValue(val); ok {
			attrs[k] = s
		}
	}
	switch nested := obj[keyAttributes].(type) {
	case nil:
	case map[string]any:
		keys := make([]string, 0, len(nested))
		for k := range nested {
			keys = append(keys, k)
		}
		sort.Strings(keys) // report clashes in a stable order
		for _, k := range keys {
			s, ok := formatValue(nested[k])
			if !ok {
				continue
			}
			if _, clash := attrs[k]; clash {
				// Picking one silently would lose data the operator gave.
				c.addf(lineNo, "attribute %q is set both at top level and in %q", k, keyAttributes)
				continue
			}
			attrs[k] = s
		}
	default:
		c.addf(lineNo, "%q must be an object, got %s", keyAttributes, jsonKind(nested))
	}
	rec.attributes = attrs
	// The record checks run even after a problem above, so that a missing
	// name on the same line is reported in this pass too; add keeps no
	// entity once the file has a problem.
	c.add(rec)
}

// formatValue renders an attribute value as a string; ok is false for null,
// which is treated like an absent attribute.
func formatValue(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, true
	case json.Number:
		return formatNumber(x), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	default:
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(x); err != nil {
			// Cannot happen for values produced by the decoder.
			return fmt.Sprint(x), true
		}
		return strings.TrimSuffix(b.String(), "\n"), true
	}
}

// formatNumber writes integers as they were written (they may exceed what a
// float64 holds exactly, e.g. external ids) and other numbers the way
// encoding/json writes a float64, so "1.50" and "1.5" give one attribute
// value.
func formatNumber(n json.Number) string {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if s == "-0" {
			return "0"
		}
		return s
	}
	f, err := n.Float64()
	if err != nil {
		return s // out of float64 range: keep the text rather than lose it
	}
	b, err := json.Marshal(f)
	if err != nil {
		return s
	}
	return string(b)
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// Package entityfile reads the entity lists an operator hands to enrichctl
// (JSON Lines or CSV) into Entity messages, each carrying the line it came
// from so later errors can point at it.
//
// Every problem in a file is reported at once, with its line, so a file of
// thousands of entities is fixed in one pass rather than one error per run.
// Values are kept verbatim: names may hold quotes, backticks or any Unicode,
// and it is the consumers (prompts, graph writes, file names) that make them
// safe for their own use.
package entityfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// Limits on input.
const (
	// MaxIDBytes bounds an entity id: ids become graph keys and file names.
	MaxIDBytes = 512
	// MaxLineBytes bounds one line, so a corrupt or binary file costs a
	// clear error instead of unbounded memory.
	MaxLineBytes = 1 << 20
	// MaxProblems is how many problems an Error lists before summarising.
	MaxProblems = 20
)

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// Read parses the entity file at path. See Parse.
func Read(path string) ([]*enrichv1.Entity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read entities: %w", err)
	}
	defer f.Close()
	return Parse(path, f)
}

// Parse reads entities from r. name picks the format by its extension
// (.jsonl, .ndjson, .json-lines: JSON Lines; .csv: CSV); for any other name
// the content decides. name also prefixes every problem. Problems with the
// content are returned together as an *Error and no entities; a failure to
// read r is returned as a plain error.
func Parse(name string, r io.Reader) ([]*enrichv1.Entity, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	// Spreadsheet exports often start with a byte order mark, which would
	// otherwise become part of the first header name or break the JSON.
	if b, _ := br.Peek(len(utf8BOM)); bytes.Equal(b, utf8BOM) {
		_, _ = br.Discard(len(utf8BOM))
	}
	head, peekErr := br.Peek(br.Size())
	if peekErr != nil && peekErr != io.EOF {
		return nil, fmt.Errorf("read %s: %w", name, peekErr)
	}
	// A blank file is reported as having no entities, whatever its name,
	// rather than as a CSV file whose header lacks every column.
	blank := peekErr == io.EOF && len(bytes.TrimSpace(head)) == 0

	c := newCollector(name)
	var err error
	switch detectFormat(name, head, blank) {
	case formatEmpty:
	case formatJSONL:
		err = parseJSONL(c, br)
	case formatJSONArray:
		c.addf(1, "a JSON array is not supported; write one JSON object per line (JSON Lines)")
	default:
		err = parseCSV(c, br)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return c.result()
}

type format int

const (
	formatCSV format = iota
	formatJSONL
	formatJSONArray
	formatEmpty
)

// detectFormat picks the parser from name, or else from head, the start of
// the input.
func detectFormat(name string, head []byte, blank bool) format {
	if blank {
		return formatEmpty
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jsonl", ".ndjson", ".json-lines":
		return formatJSONL
	case ".csv":
		return formatCSV
	}
	// Sniff within what one buffer holds. '#' lines are skipped because
	// JSON Lines files here may open with comments.
	for len(head) > 0 {
		switch head[0] {
		case ' ', '\t', '\r', '\n':
			head = head[1:]
		case '#':
			i := bytes.IndexByte(head, '\n')
			if i < 0 {
				return formatCSV
			}
			head = head[i+1:]
		case '{':
			return formatJSONL
		case '[':
			return formatJSONArray
		default:
			return formatCSV
		}
	}
	return formatCSV
}

// Problem is one thing wrong with an input file. Line is 1-based; 0 means
// the problem concerns the whole file.
type Problem struct {
	Line int
	Msg  string
}

// Error lists the problems found in one file.
type Error struct {
	File     string
	Problems []Problem // at most MaxProblems
	More     int       // problems found beyond Problems
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if p.Line > 0 {
			fmt.Fprintf(&b, "%s:%d: %s", e.File, p.Line, p.Msg)
		} else {
			fmt.Fprintf(&b, "%s: %s", e.File, p.Msg)
		}
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "\n... and %d more", e.More)
	}
	return b.String()
}

// errLineTooLong is returned by readers that enforce MaxLineBytes.
var errLineTooLong = errors.New("line too long")

// tooLongMsg is the problem reported for an over-long line.
var tooLongMsg = fmt.Sprintf("line is longer than %d bytes", MaxLineBytes)

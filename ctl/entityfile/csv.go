package entityfile

import (
	"encoding/csv"
	"errors"
	"io"
	"strings"
	"unicode/utf8"
)

func parseCSV(c *collector, r io.Reader) error {
	lr := &lineLimitReader{r: r, line: 1}
	cr := csv.NewReader(lr)
	// Set from the header below; every record must then match it.
	cr.FieldsPerRecord = 0

	header, err := cr.Read()
	if err != nil {
		_, err := csvError(c, lr, err, 0)
		return err
	}
	headerLine, _ := cr.FieldPos(0)
	cols, ok := parseHeader(c, headerLine, header)
	if !ok {
		return nil
	}

	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if stop, err := csvError(c, lr, err, len(header)); stop {
				return err
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		c.add(cols.record(c, line, rec))
	}
}

// csvError reports err as a problem and says whether reading must stop. The
// returned error is non-nil only for a failure to read the input itself.
// After a malformed record encoding/csv carries on at the next line, so
// reading goes on and later problems are reported in the same pass.
func csvError(c *collector, lr *lineLimitReader, err error, wantFields int) (stop bool, _ error) {
	switch {
	case errors.Is(err, io.EOF):
		return true, nil // empty file: the collector reports no entities
	case errors.Is(err, errLineTooLong):
		// The rest of the line cannot be skipped from under encoding/csv.
		c.addf(lr.tooLongLine, "%s", tooLongMsg)
		return true, nil
	}
	var perr *csv.ParseError
	if !errors.As(err, &perr) {
		return true, err
	}
	if errors.Is(perr.Err, csv.ErrFieldCount) {
		c.addf(perr.StartLine, "wrong number of fields (header has %d)", wantFields)
		return false, nil
	}
	c.addf(perr.Line, "malformed CSV: %v (column %d)", perr.Err, perr.Column)
	return false, nil
}

// columns maps header positions to entity fields.
type columns struct {
	id, typ, name, priority int // -1 when absent (only priority may be)
	names                   []string
}

func parseHeader(c *collector, line int, header []string) (columns, bool) {
	cols := columns{id: -1, typ: -1, name: -1, priority: -1, names: make([]string, len(header))}
	ok := true
	seen := make(map[string]int)
	for i, h := range header {
		h = strings.TrimSpace(h)
		cols.names[i] = h
		if h == "" {
			continue // allowed while its cells are empty; see record
		}
		key := strings.ToLower(h)
		switch key {
		case keyID, keyType, keyName, keyPriority:
		default:
			key = h // attribute names are kept as written
		}
		if first, dup := seen[key]; dup {
			c.addf(line, "duplicate column %q in header (columns %d and %d)", h, first+1, i+1)
			ok = false
			continue
		}
		seen[key] = i
		switch key {
		case keyID:
			cols.id = i
		case keyType:
			cols.typ = i
		case keyName:
			cols.name = i
		case keyPriority:
			cols.priority = i
		}
		if !utf8.ValidString(h) {
			c.addf(line, "header column %d is not valid UTF-8", i+1)
			ok = false
		}
	}
	var missing []string
	for _, m := range []struct {
		name string
		idx  int
	}{{keyID, cols.id}, {keyType, cols.typ}, {keyName, cols.name}} {
		if m.idx < 0 {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		c.addf(line, "header is missing columns: %s (the first line must name at least id, type and name)", strings.Join(missing, ", "))
		ok = false
	}
	return cols, ok
}

func (cols columns) record(c *collector, line int, fields []string) record {
	rec := record{line: line}
	attrs := make(map[string]string)
	for i, v := range fields {
		if !utf8.ValidString(v) {
			// Protobuf strings must be UTF-8; catch it here, with a line.
			c.addf(line, "column %d (%q) is not valid UTF-8", i+1, cols.names[i])
			continue
		}
		switch i {
		case cols.id:
			// Spaces after commas are a CSV habit, not part of an id.
			rec.id = strings.TrimSpace(v)
		case cols.typ:
			rec.typ = strings.TrimSpace(v)
		case cols.name:
			rec.name = v
		case cols.priority:
			rec.priority = v
		default:
			if strings.TrimSpace(v) == "" {
				continue
			}
			if cols.names[i] == "" {
				c.addf(line, "column %d has a value but no name in the header", i+1)
				continue
			}
			attrs[cols.names[i]] = v
		}
	}
	rec.attributes = attrs
	return rec
}

// lineLimitReader fails with errLineTooLong once a line exceeds
// MaxLineBytes, since encoding/csv would otherwise buffer it whole.
type lineLimitReader struct {
	r           io.Reader
	line        int // current line, 1-based
	lineLen     int
	tooLongLine int
}

func (l *lineLimitReader) Read(p []byte) (int, error) {
	if l.tooLongLine > 0 {
		return 0, errLineTooLong
	}
	n, err := l.r.Read(p)
	for i, b := range p[:n] {
		if b == '\n' {
			l.line++
			l.lineLen = 0
			continue
		}
		l.lineLen++
		if l.lineLen > MaxLineBytes+len("\r") {
			l.tooLongLine = l.line
			return i, errLineTooLong
		}
	}
	return n, err
}

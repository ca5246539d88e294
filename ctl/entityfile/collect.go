package entityfile

import (
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// record is one entity as read from either format, before checking.
type record struct {
	line                    int
	id, typ, name, priority string
	attributes              map[string]string
}

// collector checks records, keeps the good ones and counts the problems.
type collector struct {
	err      Error
	firstAt  map[string]int // id -> line it was first seen on
	entities []*enrichv1.Entity
}

func newCollector(file string) *collector {
	return &collector{err: Error{File: file}, firstAt: make(map[string]int)}
}

func (c *collector) addf(line int, format string, args ...any) {
	if len(c.err.Problems) >= MaxProblems {
		c.err.More++
		return
	}
	c.err.Problems = append(c.err.Problems, Problem{Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (c *collector) failed() bool { return len(c.err.Problems) > 0 }

// add checks rec and keeps it if it has no problems. Every problem of the
// record is reported, not only the first.
func (c *collector) add(rec record) {
	ok := true
	var missing []string
	for _, f := range []struct{ name, v string }{{"id", rec.id}, {"type", rec.typ}, {"name", rec.name}} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.name)
		}
	}
	switch len(missing) {
	case 0:
	case 1:
		c.addf(rec.line, "missing required field: %s", missing[0])
		ok = false
	default:
		c.addf(rec.line, "missing required fields: %s", strings.Join(missing, ", "))
		ok = false
	}
	if strings.TrimSpace(rec.id) != "" {
		if msg := checkID(rec.id); msg != "" {
			c.addf(rec.line, "%s", msg)
			ok = false
		} else if first, dup := c.firstAt[rec.id]; dup {
			c.addf(rec.line, "duplicate id %q (first at line %d)", rec.id, first)
			ok = false
		} else {
			c.firstAt[rec.id] = rec.line
		}
	}
	prio, err := parsePriority(rec.priority)
	if err != "" {
		c.addf(rec.line, "%s", err)
		ok = false
	}
	if !ok || c.failed() {
		// Once the file has a problem no entities are returned, so there
		// is no point building more.
		return
	}
	e := &enrichv1.Entity{
		Id:         rec.id,
		Type:       rec.typ,
		Name:       rec.name,
		Priority:   prio,
		SourceLine: int32(min(rec.line, math.MaxInt32)),
	}
	if len(rec.attributes) > 0 {
		e.Attributes = rec.attributes
	}
	c.entities = append(c.entities, e)
}

func (c *collector) result() ([]*enrichv1.Entity, error) {
	if !c.failed() && len(c.entities) == 0 {
		c.addf(0, "no entities found")
	}
	if c.failed() {
		err := c.err
		return nil, &err
	}
	return c.entities, nil
}

// checkID returns why id cannot be used, or "". Ids become graph keys, file
// names and log fields, where control characters and NUL do damage.
func checkID(id string) string {
	if len(id) > MaxIDBytes {
		return fmt.Sprintf("id is too long (%d bytes, max %d)", len(id), MaxIDBytes)
	}
	if !utf8.ValidString(id) {
		return "id is not valid UTF-8"
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return fmt.Sprintf("id contains control character %U", r)
		}
	}
	return ""
}

func parsePriority(s string) (enrichv1.Priority, string) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return enrichv1.Priority_PRIORITY_UNSPECIFIED, ""
	case "high":
		return enrichv1.Priority_PRIORITY_HIGH, ""
	case "normal":
		return enrichv1.Priority_PRIORITY_NORMAL, ""
	case "low":
		return enrichv1.Priority_PRIORITY_LOW, ""
	}
	return 0, fmt.Sprintf("invalid priority %q (allowed: high, normal, low)", s)
}

package entityfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

func parse(t *testing.T, name, input string) ([]*enrichv1.Entity, error) {
	t.Helper()
	return Parse(name, strings.NewReader(input))
}

func requireEntities(t *testing.T, want, got []*enrichv1.Entity) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.True(t, proto.Equal(want[i], got[i]), "entity %d:\nwant %v\ngot  %v", i, want[i], got[i])
	}
}

func TestReadCSV(t *testing.T) {
	t.Parallel()
	got, err := Read(filepath.Join("testdata", "entities.csv"))
	require.NoError(t, err)
	requireEntities(t, []*enrichv1.Entity{
		{
			Id: "club-1", Type: "Club", Name: "Arsenal FC", Priority: enrichv1.Priority_PRIORITY_HIGH,
			Attributes: map[string]string{"country": "England", "founded": "1886"}, SourceLine: 2,
		},
		{Id: "person-7", Type: "Person", Name: `Smith, "Jo"`, Priority: enrichv1.Priority_PRIORITY_LOW, SourceLine: 3},
		{
			Id: "league-2", Type: "League", Name: "Premier\nLeague",
			Attributes: map[string]string{"country": "England", "founded": "1992"}, SourceLine: 4,
		},
	}, got)
}

func TestReadJSONL(t *testing.T) {
	t.Parallel()
	got, err := Read(filepath.Join("testdata", "entities.jsonl"))
	require.NoError(t, err)
	requireEntities(t, []*enrichv1.Entity{
		{
			Id: "club-1", Type: "Club", Name: "Arsenal FC", Priority: enrichv1.Priority_PRIORITY_HIGH,
			Attributes: map[string]string{"founded": "1886", "ratio": "1.5", "active": "true"}, SourceLine: 2,
		},
		{
			Id: "42", Type: "Person", Name: "Renée `O'Brien` \"RB\"",
			Attributes: map[string]string{
				"tags":    `["coach","ex-player"]`,
				"country": "Ireland",
				"extra":   `{"a":"<x>","b":2}`,
			},
			SourceLine: 4,
		},
		{Id: "league-2", Type: "League", Name: "Premier League", SourceLine: 5},
	}, got)
}

func TestCSVHeaderIsCaseInsensitiveAndBOMIsIgnored(t *testing.T) {
	t.Parallel()
	got, err := parse(t, "export.csv", "\uFEFFID, Type ,Name,Notes\nc1,Club,  Spaced  Name ,\n")
	require.NoError(t, err)
	requireEntities(t, []*enrichv1.Entity{{Id: "c1", Type: "Club", Name: "  Spaced  Name ", SourceLine: 2}}, got)
}

func TestCSVEmptyHeaderColumnWithoutValuesIsIgnored(t *testing.T) {
	t.Parallel()
	// Spreadsheets often leave a trailing comma on every row.
	got, err := parse(t, "x.csv", "id,type,name,\nc1,Club,Arsenal,\n")
	require.NoError(t, err)
	requireEntities(t, []*enrichv1.Entity{{Id: "c1", Type: "Club", Name: "Arsenal", SourceLine: 2}}, got)
}

func TestJSONLNumbersAreCanonical(t *testing.T) {
	t.Parallel()
	got, err := parse(t, "x.jsonl", `{"id":"a","type":"Club","name":"A","a":1e3,"b":-0,"c":12345678901234567890,"d":0.10,"e":1e400,"f":false}`)
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"a": "1000", "b": "0", "c": "12345678901234567890", "d": "0.1", "e": "1e400", "f": "false",
	}, got[0].Attributes)
}

func TestFormatDetection(t *testing.T) {
	t.Parallel()
	const jsonl = `{"id":"a","type":"Club","name":"A"}` + "\n"
	const csvText = "id,type,name\na,Club,A\n"
	for _, tt := range []struct{ name, input string }{
		{"x.jsonl", jsonl},
		{"x.NDJSON", jsonl},
		{"x.json-lines", jsonl},
		{"x.json", jsonl},
		{"x", "\n\n  " + jsonl},
		{"x.txt", "# comment\n" + jsonl},
		{"x.csv", csvText},
		{"x.txt", csvText},
		{"-", csvText},
	} {
		got, err := parse(t, tt.name, tt.input)
		require.NoError(t, err, tt.name)
		require.Len(t, got, 1, tt.name)
		require.Equal(t, "a", got[0].Id, tt.name)
	}
}

func TestNamesAreKeptVerbatim(t *testing.T) {
	t.Parallel()
	names := []string{"Robert'); DROP TABLE--", "`rm -rf /`", `"quoted"`, "Fenerbahçe S.K. 🟡🔵", "$(whoami)", "a\tb", "../../etc"}
	var b strings.Builder
	for i, n := range names {
		b.WriteString(`{"id":"e` + string(rune('a'+i)) + `","type":"Club","name":`)
		b.WriteString(strconvQuoteJSON(n))
		b.WriteString("}\n")
	}
	got, err := parse(t, "x.jsonl", b.String())
	require.NoError(t, err)
	for i, n := range names {
		require.Equal(t, n, got[i].Name)
	}
}

func strconvQuoteJSON(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func TestProblems(t *testing.T) {
	t.Parallel()
	longID := strings.Repeat("x", MaxIDBytes+1)
	tests := []struct {
		name, file, input, want string
	}{
		{
			name: "malformed JSON", file: "in.jsonl",
			input: `{"id":"a","type":"Club","name":"A"}` + "\n" + `{"id": "b", "type": Club}`,
			want:  "in.jsonl:2: malformed JSON: invalid character 'C' looking for beginning of value",
		},
		{
			name: "truncated JSON", file: "in.jsonl",
			input: `{"id": "b"`,
			want:  "in.jsonl:1: malformed JSON: unexpected EOF",
		},
		{
			name: "trailing data", file: "in.jsonl",
			input: `{"id":"a","type":"Club","name":"A"} {"id":"b"}`,
			want:  "in.jsonl:1: malformed JSON: unexpected data after the object",
		},
		{
			name: "not an object", file: "in.jsonl",
			input: "[1,2]\n\"text\"\n",
			want:  "in.jsonl:1: not a JSON object (got an array)\nin.jsonl:2: not a JSON object (got a string)",
		},
		{
			name: "missing fields JSONL", file: "in.jsonl",
			input: `{"type":"Club","name":"A"}` + "\n" + `{"id":"b","name":"  "}` + "\n" + `{"note":"x"}`,
			want: "in.jsonl:1: missing required field: id\n" +
				"in.jsonl:2: missing required fields: type, name\n" +
				"in.jsonl:3: missing required fields: id, type, name",
		},
		{
			name: "missing fields CSV", file: "in.csv",
			input: "id,type,name\n,Club,A\nb,, \n",
			want:  "in.csv:2: missing required field: id\nin.csv:3: missing required fields: type, name",
		},
		{
			name: "wrong field types", file: "in.jsonl",
			input: `{"id":true,"type":1,"name":"A","priority":2,"attributes":[1]}`,
			want: "in.jsonl:1: \"id\" must be a string or a number, got a boolean\n" +
				"in.jsonl:1: \"type\" must be a string, got a number\n" +
				"in.jsonl:1: \"priority\" must be a string, got a number\n" +
				"in.jsonl:1: \"attributes\" must be an object, got an array\n" +
				"in.jsonl:1: missing required fields: id, type",
		},
		{
			name: "attribute set twice", file: "in.jsonl",
			input: `{"id":"a","type":"Club","name":"A","city":"X","attributes":{"city":"Y"}}`,
			want:  `in.jsonl:1: attribute "city" is set both at top level and in "attributes"`,
		},
		{
			name: "id too long", file: "in.jsonl",
			input: `{"id":"` + longID + `","type":"Club","name":"A"}`,
			want:  "in.jsonl:1: id is too long (513 bytes, max 512)",
		},
		{
			name: "id with NUL", file: "in.jsonl",
			input: `{"id":"a\u0000b","type":"Club","name":"A"}`,
			want:  "in.jsonl:1: id contains control character U+0000",
		},
		{
			name: "id with newline in CSV", file: "in.csv",
			input: "id,type,name\n\"a\nb\",Club,A\n",
			want:  "in.csv:2: id contains control character U+000A",
		},
		{
			name: "invalid UTF-8 in CSV", file: "in.csv",
			input: "id,type,name\na,Club,\xff\xfe\n",
			want:  "in.csv:2: column 3 (\"name\") is not valid UTF-8\nin.csv:2: missing required field: name",
		},
		{
			name: "duplicate id JSONL", file: "in.jsonl",
			input: "\n\n" + `{"id":"x","type":"Club","name":"A"}` + "\n" + `{"id":"y","type":"Club","name":"B"}` + "\n" + `{"id":"x","type":"Venue","name":"C"}`,
			want:  `in.jsonl:5: duplicate id "x" (first at line 3)`,
		},
		{
			name: "duplicate id CSV", file: "in.csv",
			input: "id,type,name\nx,Club,A\n\"multi\nline\",Club,B\nx,Club,C\n",
			want:  "in.csv:3: id contains control character U+000A\n" + `in.csv:5: duplicate id "x" (first at line 2)`,
		},
		{
			name: "bad priority", file: "in.csv",
			input: "id,type,name,priority\na,Club,A,urgent\n",
			want:  `in.csv:2: invalid priority "urgent" (allowed: high, normal, low)`,
		},
		{
			name: "CSV wrong field count", file: "in.csv",
			input: "id,type,name\na,Club,A\nb,Club\nc,Club,C,extra\n",
			want:  "in.csv:3: wrong number of fields (header has 3)\nin.csv:4: wrong number of fields (header has 3)",
		},
		{
			name: "CSV malformed quote", file: "in.csv",
			input: "id,type,name\na,Club,A \"B\"\nb,Club,B\n",
			want:  `in.csv:2: malformed CSV: bare " in non-quoted-field (column 10)`,
		},
		{
			name: "CSV missing header columns", file: "in.csv",
			input: "club-1,Club,Arsenal\n",
			want:  "in.csv:1: header is missing columns: id, type, name (the first line must name at least id, type and name)",
		},
		{
			name: "CSV duplicate header column", file: "in.csv",
			input: "id,type,name,ID\na,Club,A,b\n",
			want:  `in.csv:1: duplicate column "ID" in header (columns 1 and 4)`,
		},
		{
			name: "CSV value without header name", file: "in.csv",
			input: "id,type,name,\na,Club,A,oops\n",
			want:  "in.csv:2: column 4 has a value but no name in the header",
		},
		{
			name: "JSON array file", file: "in.json",
			input: `[{"id":"a"}]`,
			want:  "in.json:1: a JSON array is not supported; write one JSON object per line (JSON Lines)",
		},
		{name: "empty JSONL", file: "in.jsonl", input: "\n# only a comment\n", want: "in.jsonl: no entities found"},
		{name: "empty CSV", file: "in.csv", input: "", want: "in.csv: no entities found"},
		{name: "CSV header only", file: "in.csv", input: "id,type,name\n", want: "in.csv: no entities found"},
		{name: "blank unknown", file: "in", input: "  \n", want: "in: no entities found"},
		{name: "blank CSV", file: "in.csv", input: "\r\n \n", want: "in.csv: no entities found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parse(t, tt.file, tt.input)
			require.Nil(t, got)
			var perr *Error
			require.ErrorAs(t, err, &perr)
			require.Equal(t, tt.want, err.Error())
		})
	}
}

func TestProblemsAreCapped(t *testing.T) {
	t.Parallel()
	input := strings.Repeat("{}\n", MaxProblems+5)
	_, err := parse(t, "in.jsonl", input)
	var perr *Error
	require.ErrorAs(t, err, &perr)
	require.Len(t, perr.Problems, MaxProblems)
	require.Equal(t, 5, perr.More)
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, MaxProblems+1)
	require.Equal(t, "in.jsonl:20: missing required fields: id, type, name", lines[MaxProblems-1])
	require.Equal(t, "... and 5 more", lines[MaxProblems])
}

func TestLongLineJSONL(t *testing.T) {
	t.Parallel()
	long := `{"id":"a","type":"Club","name":"` + strings.Repeat("n", MaxLineBytes) + `"}`
	input := long + "\n" + `{"id":"b","type":"Club","name":"B"}` + "\n" + long
	_, err := parse(t, "in.jsonl", input)
	require.EqualError(t, err, "in.jsonl:1: line is longer than 1048576 bytes\nin.jsonl:3: line is longer than 1048576 bytes")
}

func TestLongLineJustUnderLimit(t *testing.T) {
	t.Parallel()
	prefix := `{"id":"a","type":"Club","name":"`
	line := prefix + strings.Repeat("n", MaxLineBytes-len(prefix)-2) + `"}`
	require.Len(t, line, MaxLineBytes)
	got, err := parse(t, "in.jsonl", line+"\r\n")
	require.NoError(t, err)
	require.Len(t, got[0].Name, MaxLineBytes-len(prefix)-2)
}

func TestLongLineCSV(t *testing.T) {
	t.Parallel()
	input := "id,type,name\na,Club,A\nb,Club," + strings.Repeat("n", MaxLineBytes) + "\n"
	_, err := parse(t, "in.csv", input)
	require.EqualError(t, err, "in.csv:3: line is longer than 1048576 bytes")
}

func TestReadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Read(filepath.Join(t.TempDir(), "none.csv"))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.False(t, errors.As(err, new(*Error)))
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestReadFailureIsNotAProblemList(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"x.csv", "x.jsonl"} {
		_, err := Parse(name, failingReader{})
		require.EqualError(t, err, "read "+name+": disk on fire")
		require.False(t, errors.As(err, new(*Error)))
	}
}

package runner_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/agent/runner"
)

func TestExtractJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   string
		want string
	}{
		{name: "bare object", in: `{"a":1}`, want: `{"a":1}`},
		{name: "surrounding whitespace", in: "\n\t  {\"a\": [1, 2]}  \r\n\n", want: `{"a": [1, 2]}`},
		{
			name: "fenced block in prose",
			in:   "Here is the dossier you asked for:\n\n```json\n{\"entity_id\": \"x\"}\n```\n\nLet me know {if} you need more.",
			want: `{"entity_id": "x"}`,
		},
		{
			name: "fence without a language",
			in:   "Result:\n```\n{\"a\": 1}\n```\nDone.",
			want: `{"a": 1}`,
		},
		{
			name: "fence language is case-insensitive",
			in:   "Result:\n```JSON\n{\"a\": 1}\n```\nDone.",
			want: `{"a": 1}`,
		},
		{
			name: "last valid fenced block wins",
			in: "Draft:\n```json\n{\"v\": 1}\n```\nFixed:\n```json\n{\"v\": 2}\n```\n" +
				"A broken one:\n```json\n{\"v\": 3,\n```\nAnd some code:\n```python\n{\"v\": 4}\n```\n",
			want: `{"v": 2}`,
		},
		{
			name: "object in prose with braces in strings and escaped quotes",
			in:   `Sure! The answer is {"a": "a {b}", "q": "say \"}\" loudly", "n": {"m": "}{"}} — hope that helps {not json}.`,
			want: `{"a": "a {b}", "q": "say \"}\" loudly", "n": {"m": "}{"}}`,
		},
		{
			name: "last balanced object in prose wins",
			in:   `First try {"v": 1}, then a broken {"v": oops}, finally {"v": 2} and a stray }`,
			want: `{"v": 2}`,
		},
		{
			name: "object followed by trailing text",
			in:   `{"a": 1} <- that is it`,
			want: `{"a": 1}`,
		},
		{
			name: "a fenced object beats a later bare one",
			in:   "```json\n{\"fenced\": true}\n```\nand later {\"bare\": true}",
			want: `{"fenced": true}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := runner.ExtractJSON([]byte(tc.in))
			require.NoError(t, err)
			require.Equal(t, tc.want, string(got))
		})
	}
}

func TestExtractJSONNoObject(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"empty":             "",
		"whitespace":        " \n\t ",
		"prose":             "I could not find anything about this entity, sorry.",
		"array of scalars":  `[1, 2, 3]`,
		"string":            `"{\"a\": 1}"`,
		"number":            `42`,
		"truncated object":  `{"entity_id": "x", "tags": ["a", "b"`,
		"truncated fenced":  "```json\n{\"entity_id\": \"x\",\n",
		"unbalanced braces": `{{ "a": 1`,
		"invalid object":    `{a: 1}`,
		"only braces":       `}{`,
		// A cut-off answer must not yield a fragment of its inside.
		"truncated nested": `{"name": "x", "org": {"city": "Munich"}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := runner.ExtractJSON([]byte(in))
			require.ErrorIs(t, err, runner.ErrNoJSON)
			require.Nil(t, got)
		})
	}
}

func TestExtractJSONEmptyObject(t *testing.T) {
	t.Parallel()
	got, err := runner.ExtractJSON([]byte("prose {} prose"))
	require.NoError(t, err)
	require.Equal(t, "{}", string(got))
}

func FuzzExtractJSON(f *testing.F) {
	for _, seed := range []string{
		``,
		`{}`,
		`{"a":1}`,
		"  {\"a\": [1, {\"b\": null}]}\n",
		"prose\n```json\n{\"a\": \"x\"}\n```\nmore prose",
		"```json\n{\"v\": 1}\n```\n```json\n{\"v\": 2}\n```",
		"```\n{\"v\": 1}\n",
		"```json{\"v\": 1}```",
		`text {"a": "a {b}", "q": "\"}\""} text`,
		`[{"a":1},{"b":2}]`,
		`{"a": "unterminated`,
		`{"a": {"b": {"c": {}}}`,
		`\{"a":1\}`,
		"{\"a\":\"\xff\xfe\"}",
		`{"a":1}{"b":2}`,
		`}{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := runner.ExtractJSON(in)
		if err != nil {
			require.ErrorIs(t, err, runner.ErrNoJSON)
			require.Nil(t, got)
			return
		}
		require.True(t, json.Valid(got), "not valid JSON: %q", got)
		require.True(t, len(got) >= 2 && got[0] == '{' && got[len(got)-1] == '}', "not an object: %q", got)
		var obj map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(got, &obj), "not a JSON object: %q", got)
		require.True(t, bytes.Contains(in, got), "result %q is not a substring of the input", got)
	})
}

package slug_test

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/internal/slug"
)

func TestMake(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id, want string
	}{
		{"club-fc-barcelona", "club-fc-barcelona"},
		{"league-la-liga-2", "league-la-liga-2"},
		{"münchen", "münchen"},
		{"Club-FC-Barcelona", "club-fc-barcelona-"},
		{"Bayern München", "bayern-münchen-"},
		{"../../etc/passwd", "etc-passwd-"},
		{"a/b", "a-b-"},
		{`a\b`, "a-b-"},
		{"..", "entity-"},
		{".", "entity-"},
		{"", "entity-"},
		{"\x00\x01\n", "entity-"},
		{".hidden", "hidden-"},
		{"  spaced   out  ", "spaced-out-"},
		{"Fenerbahçe S.K.", "fenerbahçe-s-k-"},
		{"con", "con-"},
		{"club-x-0123abcd", "club-x-0123abcd-"},
		{"\xff\xfeclub", "club-"},
	} {
		got := slug.Make(tc.id)
		if strings.HasSuffix(tc.want, "-") {
			require.True(t, strings.HasPrefix(got, tc.want), "Make(%q) = %q, want prefix %q", tc.id, got, tc.want)
			require.Len(t, got, len(tc.want)+8, "Make(%q) = %q", tc.id, got)
		} else {
			require.Equal(t, tc.want, got, "Make(%q)", tc.id)
		}
		requireSafe(t, got)
	}
}

func TestMakeLong(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("ü", 200)
	got := slug.Make(long)
	require.LessOrEqual(t, len(got), slug.MaxLen)
	require.True(t, utf8.ValidString(got))
	require.NotEqual(t, got, slug.Make(long+"x"), "ids sharing a long prefix must not share a slug")
}

func TestMakeNormalisation(t *testing.T) {
	t.Parallel()
	composed, decomposed := "m\u00fcnchen", "mu\u0308nchen"
	require.Equal(t, composed, slug.Make(composed))
	got := slug.Make(decomposed)
	require.True(t, strings.HasPrefix(got, composed+"-"), got)
}

// tricky holds ids that clean up to the same text; each must still get its
// own slug.
var tricky = [][2]string{
	{"A", "a"},
	{"a/b", "a-b"},
	{"a/b", `a\b`},
	{"a..b", "a-b"},
	{"a b", "a-b"},
	{"a-b", "a--b"},
	{"", "-"},
	{".", ".."},
	{"X", "x-4b68ab38"}, // sha256("X") starts 4b68ab38
	{"Ä", "ä"},
	{"m\u00fcnchen", "mu\u0308nchen"},
	{strings.Repeat("a", 120), strings.Repeat("a", 121)},
	{"con", "CON"},
}

func TestMakeDistinct(t *testing.T) {
	t.Parallel()
	for _, p := range tricky {
		require.NotEqual(t, slug.Make(p[0]), slug.Make(p[1]), "ids %q and %q", p[0], p[1])
	}
}

func FuzzMake(f *testing.F) {
	for _, p := range tricky {
		f.Add(p[0], p[1])
	}
	f.Add("Bayern München", "bayern-münchen")
	f.Add("../x", "./x")
	f.Add("\x00", "\u2028")
	f.Fuzz(func(t *testing.T, a, b string) {
		sa := slug.Make(a)
		requireSafe(t, sa)
		require.Equal(t, sa, slug.Make(a), "not deterministic")
		if a != b {
			require.NotEqual(t, sa, slug.Make(b), "ids %q and %q share a slug", a, b)
		}
	})
}

func requireSafe(t *testing.T, s string) {
	t.Helper()
	require.NotEmpty(t, s)
	require.LessOrEqual(t, len(s), slug.MaxLen, s)
	require.True(t, utf8.ValidString(s), "%q", s)
	require.False(t, strings.HasPrefix(s, "."), "%q", s)
	require.False(t, strings.HasPrefix(s, "-") || strings.HasSuffix(s, "-"), "%q", s)
	require.NotContains(t, s, "--")
	require.Equal(t, strings.ToLower(s), s)
	for _, r := range s {
		ok := unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) || r == '-'
		require.True(t, ok, "unsafe rune %q in %q", r, s)
		require.False(t, unicode.IsControl(r) || r == '/' || r == '\\' || r == 0, "%q", s)
	}
}

// Package slug turns entity ids into names that are safe as file names on
// every platform we write dossiers to.
package slug

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxLen bounds a slug in bytes, leaving room for a directory and an
// extension under the usual 255-byte file-name limit.
const MaxLen = 100

const hashLen = 8

// hashedSuffix matches what Make appends. An id that already ends like this
// is hashed too, so it cannot collide with another id's hashed slug.
var hashedSuffix = regexp.MustCompile(`-[0-9a-f]{8}$`)

// reserved are device names Windows refuses as file names, with or without an
// extension.
var reserved = map[string]bool{
	"con": true, "prn": true, "aux": true, "nul": true,
	"com1": true, "com2": true, "com3": true, "com4": true, "com5": true,
	"com6": true, "com7": true, "com8": true, "com9": true,
	"lpt1": true, "lpt2": true, "lpt3": true, "lpt4": true, "lpt5": true,
	"lpt6": true, "lpt7": true, "lpt8": true, "lpt9": true,
}

// Make returns a file-name-safe slug for id: lowercase letters, digits and
// single dashes, at most MaxLen bytes. Letters outside ASCII are kept so
// names stay readable ("Bayern München" gives "bayern-münchen-<hash>").
// Whenever the slug is not the id itself, it ends with "-" and the first
// eight hex digits of sha256(id), so two ids that clean up to the same text
// (such as "A" and "a", or "a/b" and "a-b") still get different files.
func Make(id string) string {
	base := clean(id)
	if base != "" && base == id && len(base) <= MaxLen && !reserved[base] && !hashedSuffix.MatchString(base) {
		return base
	}
	sum := sha256.Sum256([]byte(id))
	h := hex.EncodeToString(sum[:])[:hashLen]
	base = strings.TrimRight(cut(base, MaxLen-hashLen-1), "-")
	if base == "" {
		return "entity-" + h
	}
	return base + "-" + h
}

// clean lowercases id in NFC form (macOS file systems treat composed and
// decomposed spellings as one name, so a slug must not depend on which one
// the id used), keeps letters, digits and combining marks, and turns
// every run of anything else into one dash, trimmed at both ends. No dot,
// separator or control character survives, so the result can never be ".",
// "..", hidden, or a path.
func clean(id string) string {
	var b strings.Builder
	b.Grow(len(id))
	dash := false
	for _, r := range norm.NFC.String(strings.ToLower(id)) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || (unicode.IsMark(r) && b.Len() > 0 && !dash) {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	return b.String()
}

// cut shortens s to at most n bytes without splitting a rune.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

package auth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// Role is what a token may do.
type Role string

// Roles.
const (
	RoleAgent  Role = "agent"
	RoleViewer Role = "viewer"
	RoleAdmin  Role = "admin"
)

// Roles lists every role, for tests and messages.
var Roles = []Role{RoleAgent, RoleViewer, RoleAdmin}

func (r Role) valid() bool { return r == RoleAgent || r == RoleViewer || r == RoleAdmin }

// HashPrefix starts every stored token hash.
const HashPrefix = "sha256:"

// MinSecretLen is the shortest secret `enrichctl tokens hash` accepts: shorter ones can be
// guessed from a hash.
const MinSecretLen = 16

// CheckInterval bounds how often a lookup stats the token file for changes.
const CheckInterval = 2 * time.Second

var (
	namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)
	hashPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	// An agent id pattern is an agent id, optionally ending in * to match a prefix.
	agentIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}\*?$|^\*$`)
)

// Hash returns the stored form of a token secret.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return HashPrefix + hex.EncodeToString(sum[:])
}

// Identity is who a token belongs to.
type Identity struct {
	Name string
	Role Role
	// AgentIDs are the agent ids an agent token may use in Hello; empty means only Name.
	AgentIDs []string
}

// MayUseAgentID reports whether an agent authenticated as id may call itself agentID.
func (id *Identity) MayUseAgentID(agentID string) bool {
	if len(id.AgentIDs) == 0 {
		return agentID == id.Name
	}
	for _, p := range id.AgentIDs {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(agentID, prefix) {
				return true
			}
		} else if agentID == p {
			return true
		}
	}
	return false
}

// tokenEntry is one line or YAML item of a token file.
type tokenEntry struct {
	Name     string   `yaml:"name"`
	Role     string   `yaml:"role"`
	Hash     string   `yaml:"hash"`
	AgentIDs []string `yaml:"agent_ids"`
}

// ParseTokens reads a token file: YAML with a top-level "tokens:" list, or lines of
// "role name sha256:hex [agent_ids=a,b*]" with # comments. Errors name the line but never
// echo a hash.
func ParseTokens(name string, data []byte) (map[string]*Identity, error) {
	entries, err := parseEntries(name, data)
	if err != nil {
		return nil, err
	}
	byHash := make(map[string]*Identity, len(entries))
	roleOf := map[string]Role{}
	var errs []error
	for _, e := range entries {
		where := fmt.Sprintf("%s: token %q", name, e.entry.Name)
		if e.line > 0 {
			where = fmt.Sprintf("%s:%d", name, e.line)
		}
		id, err := e.entry.identity()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if _, dup := byHash[e.entry.Hash]; dup {
			errs = append(errs, fmt.Errorf("%s: the same token hash is listed twice", where))
			continue
		}
		// One name may have several tokens (rotation), but always with one role.
		if r, ok := roleOf[id.Name]; ok && r != id.Role {
			errs = append(errs, fmt.Errorf("%s: %q already has role %s", where, id.Name, r))
			continue
		}
		roleOf[id.Name] = id.Role
		byHash[e.entry.Hash] = id
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return byHash, nil
}

func (e tokenEntry) identity() (*Identity, error) {
	if !namePattern.MatchString(e.Name) {
		return nil, fmt.Errorf("name %q: use 1-128 letters, digits and . _ : @ -", e.Name)
	}
	role := Role(e.Role)
	if !role.valid() {
		return nil, fmt.Errorf("role %q: want agent, viewer or admin", e.Role)
	}
	if !hashPattern.MatchString(e.Hash) {
		return nil, errors.New("hash: want sha256: and 64 lower-case hex digits (enrichctl tokens hash prints one)")
	}
	for _, p := range e.AgentIDs {
		if !agentIDPattern.MatchString(p) {
			return nil, fmt.Errorf("agent id %q: use an agent id, optionally ending in *", p)
		}
	}
	if len(e.AgentIDs) > 0 && role != RoleAgent {
		return nil, fmt.Errorf("agent_ids only apply to role agent, not %s", role)
	}
	return &Identity{Name: e.Name, Role: role, AgentIDs: e.AgentIDs}, nil
}

type numbered struct {
	line  int
	entry tokenEntry
}

func parseEntries(name string, data []byte) ([]numbered, error) {
	if isYAML(data) {
		var doc struct {
			Tokens []tokenEntry `yaml:"tokens"`
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out := make([]numbered, 0, len(doc.Tokens))
		for _, e := range doc.Tokens {
			out = append(out, numbered{entry: e})
		}
		return out, nil
	}
	var out []numbered
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 && len(f) != 4 {
			return nil, fmt.Errorf("%s:%d: want \"role name sha256:hex [agent_ids=a,b]\", got %d fields", name, n, len(f))
		}
		e := tokenEntry{Role: f[0], Name: f[1], Hash: f[2]}
		if len(f) == 4 {
			ids, ok := strings.CutPrefix(f[3], "agent_ids=")
			if !ok {
				return nil, fmt.Errorf("%s:%d: fourth field must be agent_ids=ID,ID", name, n)
			}
			e.AgentIDs = strings.Split(ids, ",")
		}
		out = append(out, numbered{line: n, entry: e})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// isYAML tells the YAML form by its first significant line.
func isYAML(data []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || line == "---" {
			continue
		}
		return strings.HasPrefix(line, "tokens:")
	}
	return false
}

// Tokens is the set of accepted tokens, re-read from its file on Reload (SIGHUP) or when a
// lookup finds the file changed. A reload that fails keeps the previous set.
type Tokens struct {
	path string
	// OnReload, if set, is told of every reload after the first load (nil on success).
	OnReload func(count int, err error)
	now      func() time.Time

	mu        sync.Mutex
	byHash    map[string]*Identity
	stamp     fileStamp
	lastCheck time.Time
}

type fileStamp struct {
	size    int64
	modTime time.Time
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime()}
}

// LoadTokens reads path; an error is a start-up error.
func LoadTokens(path string) (*Tokens, error) {
	t := &Tokens{path: path, now: time.Now}
	byHash, st, err := t.read()
	if err != nil {
		return nil, err
	}
	if len(byHash) == 0 {
		return nil, fmt.Errorf("%s: no tokens: authentication would refuse everyone", path)
	}
	t.byHash, t.stamp, t.lastCheck = byHash, st, t.now()
	return t, nil
}

func (t *Tokens) read() (map[string]*Identity, fileStamp, error) {
	st := stampOf(t.path)
	data, err := os.ReadFile(t.path)
	if err != nil {
		return nil, st, fmt.Errorf("read tokens: %w", err)
	}
	byHash, err := ParseTokens(t.path, data)
	return byHash, st, err
}

// Len is the number of accepted tokens.
func (t *Tokens) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byHash)
}

// Reload re-reads the file now; revoked tokens stop working at once.
func (t *Tokens) Reload() error {
	byHash, st, err := t.read()
	t.mu.Lock()
	if err == nil {
		t.byHash, t.stamp = byHash, st
	}
	t.lastCheck = t.now()
	n := len(t.byHash)
	t.mu.Unlock()
	if t.OnReload != nil {
		t.OnReload(n, err)
	}
	return err
}

// Lookup returns the identity of a presented secret.
func (t *Tokens) Lookup(secret string) (*Identity, bool) {
	t.mu.Lock()
	due := t.now().Sub(t.lastCheck) >= CheckInterval
	changed := due && stampOf(t.path) != t.stamp
	if due {
		t.lastCheck = t.now()
	}
	t.mu.Unlock()
	if changed {
		_ = t.Reload()
	}
	// The map is keyed by the hash, so timing reveals nothing about the secret itself.
	h := Hash(secret)
	t.mu.Lock()
	defer t.mu.Unlock()
	id, ok := t.byHash[h]
	return id, ok
}

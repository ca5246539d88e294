package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// spool keeps finished results until the coordinator acknowledges them. With a directory, each
// result is a file written and synced before it is sent, so an agent crash loses nothing; without
// one, results survive reconnects but not restarts.
type spool struct {
	dir string

	mu      sync.Mutex
	entries map[string]*spoolEntry
}

type spoolEntry struct {
	msg *enrichv1.ConnectRequest
	// sentIn is the session generation that last sent the entry, so a result is sent once per
	// session even when its run ends while the session is starting.
	sentIn uint64
}

func spoolKey(ref *enrichv1.LeaseRef) string {
	return fmt.Sprintf("%d-%d", ref.GetItemId(), ref.GetToken())
}

func openSpool(dir string) (*spool, error) {
	s := &spool{dir: dir, entries: map[string]*spoolEntry{}}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create spool %s: %w", dir, err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.pb"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read spooled result: %w", err)
		}
		msg := &enrichv1.ConnectRequest{}
		if err := proto.Unmarshal(raw, msg); err != nil || leaseOf(msg) == nil {
			// Keep the bytes for a person to look at; never send garbage.
			_ = os.Rename(f, f+".corrupt")
			continue
		}
		s.entries[spoolKey(leaseOf(msg))] = &spoolEntry{msg: msg}
	}
	return s, nil
}

func leaseOf(msg *enrichv1.ConnectRequest) *enrichv1.LeaseRef {
	switch m := msg.Msg.(type) {
	case *enrichv1.ConnectRequest_Result:
		return m.Result.GetLease()
	case *enrichv1.ConnectRequest_Failure:
		return m.Failure.GetLease()
	}
	return nil
}

// put stores a finished result durably.
func (s *spool) put(msg *enrichv1.ConnectRequest) error {
	key := spoolKey(leaseOf(msg))
	if s.dir != "" {
		raw, err := proto.Marshal(msg)
		if err != nil {
			return err
		}
		if err := writeSynced(filepath.Join(s.dir, key+".pb"), raw); err != nil {
			return fmt.Errorf("spool result %s: %w", key, err)
		}
	}
	s.mu.Lock()
	s.entries[key] = &spoolEntry{msg: msg}
	s.mu.Unlock()
	return nil
}

func writeSynced(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// The rename is durable only once the directory entry is.
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// leases lists the leases whose results wait for an acknowledgement.
func (s *spool) leases() []*enrichv1.LeaseRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*enrichv1.LeaseRef, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, leaseOf(e.msg))
	}
	return out
}

// ack forgets an acknowledged result.
func (s *spool) ack(ref *enrichv1.LeaseRef) {
	key := spoolKey(ref)
	s.mu.Lock()
	delete(s.entries, key)
	s.mu.Unlock()
	if s.dir != "" {
		_ = os.Remove(filepath.Join(s.dir, key+".pb"))
	}
}

// unsent returns the entries not yet sent in session gen and marks them sent.
func (s *spool) unsent(gen uint64) []*enrichv1.ConnectRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.entries))
	for k, e := range s.entries {
		if e.sentIn != gen {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]*enrichv1.ConnectRequest, 0, len(keys))
	for _, k := range keys {
		s.entries[k].sentIn = gen
		out = append(out, s.entries[k].msg)
	}
	return out
}

func (s *spool) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

func (s *spool) String() string {
	if s.dir == "" {
		return "memory"
	}
	return strings.TrimSuffix(s.dir, "/")
}

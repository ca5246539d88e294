package coordinator

import "sync"

// hub tells watchers that a batch changed. Notifications carry no data: a watcher re-reads the
// batch, so a slow watcher that misses some notifications still sees the latest state.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]bool
}

func newHub() *hub {
	return &hub{subs: map[string]map[chan struct{}]bool{}}
}

// subscribe returns a channel signalled on changes of batch id ("" for every batch).
func (h *hub) subscribe(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[id] == nil {
		h.subs[id] = map[chan struct{}]bool{}
	}
	h.subs[id][ch] = true
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[id], ch)
		if len(h.subs[id]) == 0 {
			delete(h.subs, id)
		}
		h.mu.Unlock()
	}
}

func (h *hub) publish(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, key := range []string{id, ""} {
		for ch := range h.subs[key] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// publishAll signals every watcher: agents came or went, which changes every batch's view.
func (h *hub) publishAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, subs := range h.subs {
		for ch := range subs {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

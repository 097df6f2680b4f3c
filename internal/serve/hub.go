package serve

import (
	"context"
	"sync"

	"github.com/rotorhq/rotor/internal/engine"
)

// hub fans the engine's progress events out to subscribers (the
// console's live view). The engine must never wait on a slow reader, so a
// subscriber whose buffer is full misses events rather than holding up a
// rotation.
type hub struct {
	mu   sync.Mutex
	subs map[chan engine.Event]struct{}
}

func newHub() *hub { return &hub{subs: map[chan engine.Event]struct{}{}} }

func (h *hub) subscribe(ctx context.Context) <-chan engine.Event {
	ch := make(chan engine.Event, 256)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	go func() {
		<-ctx.Done()
		h.mu.Lock()
		delete(h.subs, ch)
		close(ch)
		h.mu.Unlock()
	}()
	return ch
}

func (h *hub) publish(ev engine.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

package dashboard

import (
	"encoding/json"
	"sync"
)

// broadcaster fans the dashboard's changes out to the live streams. Each
// stream has a bounded queue; one that falls behind is closed (the page
// reconnects and reloads), so a slow client never holds the hub back.
type broadcaster struct {
	max int

	mu   sync.Mutex
	subs map[chan []byte]struct{}
	seq  uint64
}

const streamQueue = 256 // messages queued per stream

func newBroadcaster(max int) *broadcaster {
	return &broadcaster{max: max, subs: map[chan []byte]struct{}{}}
}

// subscribe adds a stream; nil when MaxStreams are served.
func (b *broadcaster) subscribe() chan []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.subs) >= b.max {
		return nil
	}
	c := make(chan []byte, streamQueue)
	b.subs[c] = struct{}{}
	return c
}

func (b *broadcaster) unsubscribe(c chan []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[c]; ok {
		delete(b.subs, c)
		close(c)
	}
}

// publish sends one server-sent event (event name, JSON data) to every stream.
func (b *broadcaster) publish(event string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.subs) == 0 {
		return
	}
	b.seq++
	msg := sseMessage(event, b.seq, data)
	for c := range b.subs {
		select {
		case c <- msg:
		default:
			delete(b.subs, c) // fell behind: the page reconnects
			close(c)
		}
	}
}

func sseMessage(event string, id uint64, data []byte) []byte {
	out := make([]byte, 0, len(event)+len(data)+32)
	out = append(out, "event: "...)
	out = append(out, event...)
	out = append(out, "\nid: "...)
	out = append(out, utoa(id)...)
	out = append(out, "\ndata: "...)
	out = append(out, data...) // JSON has no raw newlines
	return append(out, "\n\n"...)
}

package leaf

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Uplink is what the hub's uplink stream knows of one device's outbox:
// Delivered is the last outbox sequence it stored (the device's outbox
// numbers its messages from 1, so this is how many have arrived); Lag the
// messages it knew to be waiting at its last contact with the outbox
// (JetStream reports it only while the link is up: a device offline for
// an hour shows the lag of when it went away, and a growing Idle); Idle
// the time since that contact (negative: none yet); Err the server's
// replication error, if any.
type Uplink struct {
	Delivered uint64        `json:"delivered"`
	Lag       uint64        `json:"lag"`
	Idle      time.Duration `json:"idle"`
	Err       string        `json:"error,omitempty"`
}

// Uplinks reads the hub's uplink stream's sources through js (a
// connection to the hub's own JetStream) and returns them by device id.
// A hub without the stream (no leaf listener) gives an empty map.
func Uplinks(ctx context.Context, js jetstream.JetStream) (map[string]Uplink, error) {
	s, err := js.Stream(ctx, UplinkStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return map[string]Uplink{}, nil
	}
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Uplink, len(info.Sources))
	for _, src := range info.Sources {
		if src == nil {
			continue
		}
		id, ok := strings.CutPrefix(src.Name, OutboxStream(""))
		if !ok || id == "" {
			continue
		}
		u := Uplink{Delivered: src.Seq, Lag: src.Lag, Idle: src.Active}
		if src.Error != nil {
			u.Err = src.Error.Description
		}
		out[id] = u
	}
	return out, nil
}

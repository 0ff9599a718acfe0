package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/internal/natsembed"
)

// NeedsNATS reports whether a binding of c has source nats or mqtt.
func (c *DeviceConfig) NeedsNATS() bool {
	for _, b := range c.Bindings {
		if b.Source != SourceHTTP {
			return true
		}
	}
	return c.MQTT.Listen != ""
}

// StartLocalNATS starts the device's own nats-server (internal/natsembed)
// as c.NATS and c.MQTT say: client connections on c.NATS.Listen (or
// in-process only), and nats-server's MQTT 3.1.1 listener on
// c.MQTT.Listen, so that sensors publish to the same subjects the
// bindings subscribe to without a second broker.
func StartLocalNATS(ctx context.Context, c *DeviceConfig) (*server.Server, error) {
	dir := c.NATS.Dir
	if dir == "" {
		base := "."
		if c.source != "" {
			base = filepath.Dir(c.source)
		}
		dir = filepath.Join(base, "nats")
	}
	listen := c.NATS.Listen
	if listen == "" {
		listen = "-"
	}
	configure, tlsc, err := c.mqttOptions()
	if err != nil {
		return nil, err
	}
	return natsembed.Start(ctx, natsembed.Config{Name: "fennec-device-" + c.Device, Dir: dir, Listen: listen, TLS: tlsc,
		Configure: configure})
}

// ServerOptions is what StartLocalNATS sets on its server's options
// beyond the store and the client address, for a server the caller starts
// itself (an agent's leaf node, which then carries the bindings): the
// MQTT listener of c.MQTT and, with [tls], TLS on the client listener
// (when it listens) and on the MQTT one.
func (c *DeviceConfig) ServerOptions() (func(*server.Options), error) {
	configure, tlsc, err := c.mqttOptions()
	if err != nil {
		return nil, err
	}
	return func(o *server.Options) {
		if tlsc != nil && !o.DontListen {
			o.TLS, o.TLSConfig, o.TLSTimeout = true, tlsc, 5
			o.TLSVerify = tlsc.ClientAuth == tls.RequireAndVerifyClientCert
		}
		configure(o)
	}, nil
}

// mqttOptions parses c.MQTT.Listen and loads [tls]: it returns the
// options the MQTT listener needs and the listeners' TLS configuration.
func (c *DeviceConfig) mqttOptions() (func(*server.Options), *tls.Config, error) {
	var mhost string
	var mport int
	if c.MQTT.Listen != "" {
		h, p, err := net.SplitHostPort(c.MQTT.Listen)
		if err != nil {
			return nil, nil, fmt.Errorf("mqtt listen %q: %w", c.MQTT.Listen, err)
		}
		if mport, err = strconv.Atoi(p); err != nil || mport < 0 || mport > 65535 {
			return nil, nil, fmt.Errorf("mqtt listen %q: bad port", c.MQTT.Listen)
		}
		if mport == 0 {
			mport = -1 // nats-server: a random port
		}
		mhost = h
	}
	tlsc, err := c.ServerTLS()
	if err != nil {
		return nil, nil, err
	}
	return func(o *server.Options) {
		if mport != 0 {
			o.MQTT.Host, o.MQTT.Port = mhost, mport
			if tlsc != nil {
				o.MQTT.TLSConfig, o.MQTT.TLSTimeout = tlsc, 5
				o.MQTT.TLSMap = false
			}
		}
	}, tlsc, nil
}

// MQTTMessagesStream is the stream in which nats-server keeps QoS 1 and 2
// messages published over MQTT for MQTT subscribers (interest retention),
// and MQTTMessagesSubjects its subjects.
const (
	MQTTMessagesStream   = "$MQTT_msgs"
	MQTTMessagesSubjects = "$MQTT.msgs.>"
	// MQTTMessagesMaxBytes bounds the memory stream: past it the oldest
	// messages held for slow MQTT subscribers go first (a leaf node's
	// JetStream has 8 MiB of memory in all).
	MQTTMessagesMaxBytes = 4 << 20
)

// MemoryMQTTMessages makes the device's MQTT message stream a memory one,
// before nats-server's MQTT listener creates it on file: it creates the
// stream with memory storage or, when a file one is there with no
// consumers (no MQTT subscriber's persistent session holds messages in it),
// replaces it. It reports what it did: "created", "replaced", "kept"
// (already memory) or "in use" (a file stream with consumers, left alone:
// QoS 1 publishes then still wait for a disk sync).
//
// Why (docs/RATIONALE.md, "Why is the device's MQTT message stream kept in
// memory?"): nats-server writes every QoS 1 publish to this stream before
// it sends the PUBACK, and the device's store syncs every write; with no
// MQTT subscriber the write is only a skipped sequence number, and the
// binding has the message from nats-server's core delivery already, so the
// sync bounded MQTT ingest at the disk's sync rate for no durability.
func MemoryMQTTMessages(nc *nats.Conn) (string, error) {
	js, err := nc.JetStream()
	if err != nil {
		return "", err
	}
	cfg := &nats.StreamConfig{Name: MQTTMessagesStream, Subjects: []string{MQTTMessagesSubjects},
		Storage: nats.MemoryStorage, Retention: nats.InterestPolicy,
		MaxBytes: MQTTMessagesMaxBytes, Discard: nats.DiscardOld}
	si, err := js.StreamInfo(MQTTMessagesStream)
	switch {
	case errors.Is(err, nats.ErrStreamNotFound):
		if _, err := js.AddStream(cfg); err != nil {
			return "", fmt.Errorf("mqtt message stream: %w", err)
		}
		return "created", nil
	case err != nil:
		return "", fmt.Errorf("mqtt message stream: %w", err)
	case si.Config.Storage == nats.MemoryStorage:
		return "kept", nil
	case si.State.Consumers > 0:
		return "in use", nil
	}
	if err := js.DeleteStream(MQTTMessagesStream); err != nil {
		return "", fmt.Errorf("mqtt message stream: %w", err)
	}
	if _, err := js.AddStream(cfg); err != nil {
		return "", fmt.Errorf("mqtt message stream: %w", err)
	}
	return "replaced", nil
}

// Command uplinkcount counts what a stopped hub's FENNEC_UPLINK stream
// holds of one device's outbox (scripts/outage.sh): it opens the hub's
// store (fennec hub --data DIR) with an embedded server that listens
// nowhere, reads the whole stream and identifies each message by the
// outbox sequence its Nats-Stream-Source header names (the device's
// outbox numbers its messages from 1: that sequence is the message's id
// end to end). It prints one line of key=value pairs:
//
//	messages   messages of the device in the uplink
//	unique     distinct outbox sequences among them
//	duplicates messages minus unique
//	max_seq    the highest outbox sequence seen
//	missing    sequences in 1..-want (or 1..max_seq) that never arrived
//	first_missing  the lowest of those (0: none)
//
// The hub must not be running: its store is one process's.
//
// Usage: go run ./scripts/uplinkcount -store DIR -device ID [-want N]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fennec-edge/fennec/internal/leaf"
	"github.com/fennec-edge/fennec/internal/natsembed"
)

// sourceHeader names the origin of a sourced message (nats-server
// JSStreamSource).
const sourceHeader = "Nats-Stream-Source"

func main() {
	store := flag.String("store", "", "the hub's --data directory (the hub stopped)")
	device := flag.String("device", "", "device id")
	want := flag.Uint64("want", 0, "outbox sequences 1..N expected (0: up to the highest seen)")
	flag.Parse()
	if *store == "" || *device == "" {
		fmt.Fprintln(os.Stderr, "usage: uplinkcount -store DIR -device ID [-want N]")
		os.Exit(2)
	}
	if err := run(*store, *device, *want); err != nil {
		fmt.Fprintln(os.Stderr, "uplinkcount:", err)
		os.Exit(1)
	}
}

func run(store, device string, want uint64) error {
	if _, err := os.Stat(store + "/jetstream"); err != nil {
		return fmt.Errorf("%s is not a hub store: %w", store, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ns, err := natsembed.Start(ctx, natsembed.Config{Name: "uplinkcount", Dir: store, Listen: "-",
		Configure: func(o *server.Options) { leaf.HubOptions(o) }})
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	s, err := js.Stream(ctx, leaf.UplinkStream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", leaf.UplinkStream, err)
	}
	total := s.CachedInfo().State.Msgs
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{leaf.UplinkPrefix(device) + ">"}})
	if err != nil {
		return err
	}
	seen := map[uint64]int{}
	var msgs, maxSeq uint64
	outbox := leaf.OutboxStream(device)
	for read := uint64(0); read < total; read++ {
		m, err := c.Next(jetstream.FetchMaxWait(3 * time.Second))
		if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) {
			break // no more of this device's
		}
		if err != nil {
			return err
		}
		// "<stream>[:hash] <seq> <filter> <transform> <orig>"
		f := strings.Fields(m.Headers().Get(sourceHeader))
		if len(f) < 2 || strings.SplitN(f[0], ":", 2)[0] != outbox {
			return fmt.Errorf("message on %s: source header %q does not name %s", m.Subject(), m.Headers().Get(sourceHeader), outbox)
		}
		seq, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return fmt.Errorf("message on %s: source sequence %q: %v", m.Subject(), f[1], err)
		}
		msgs++
		seen[seq]++
		maxSeq = max(maxSeq, seq)
	}
	if want == 0 {
		want = maxSeq
	}
	var missing, firstMissing uint64
	for q := uint64(1); q <= want; q++ {
		if seen[q] == 0 {
			missing++
			if firstMissing == 0 {
				firstMissing = q
			}
		}
	}
	fmt.Printf("messages=%d unique=%d duplicates=%d max_seq=%d missing=%d first_missing=%d\n",
		msgs, len(seen), msgs-uint64(len(seen)), maxSeq, missing, firstMissing)
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/internal/leaf"
	"github.com/fennec-edge/fennec/runtime"
	"github.com/fennec-edge/fennec/serve"
)

// serving is what an agent serves: its bindings, /metrics, /healthz and
// /readyz (fennec agent --device-config, --http).
type serving struct {
	srv   *serve.Server
	close []func()
}

// loadDeviceConfig reads --device-config (or makes an empty one for
// --http alone) and applies --http.
func loadDeviceConfig(path, httpAddr string) (*serve.DeviceConfig, error) {
	dc := &serve.DeviceConfig{}
	if path != "" {
		var err error
		if dc, err = serve.ReadDeviceConfig(path); err != nil {
			return nil, &exitError{exitBadInput, err}
		}
	} else {
		var err error
		if dc, err = serve.ParseDeviceConfig(nil, "--http"); err != nil {
			return nil, err
		}
	}
	if httpAddr != "" {
		dc.HTTP.Listen = httpAddr
	}
	return dc, nil
}

// startServing loads dc's [[module]] files into eng, maps the other
// modules bindings name to the rollout deployer (when there is one),
// starts the device's own nats-server when a binding needs it (unless ns,
// the agent's leaf node, is given: the bindings then use it), and starts
// the server. reg gets the serving metrics.
func startServing(ctx context.Context, out io.Writer, eng *runtime.Engine, dc *serve.DeviceConfig, dir string, rd *deploy.Device,
	ns *server.Server, reg *prometheus.Registry, log *slog.Logger) (*serving, error) {
	sv := &serving{}
	fail := func(err error) (*serving, error) {
		sv.stop()
		return nil, err
	}
	mods := map[string]serve.Module{}
	for i, mc := range dc.Modules {
		wasm := mc.Wasm
		if !filepath.IsAbs(wasm) && dir != "" {
			wasm = filepath.Join(dir, wasm)
		}
		man := mc.Manifest
		if man != "" && !filepath.IsAbs(man) && dir != "" {
			man = filepath.Join(dir, man)
		}
		m, err := eng.LoadFile(ctx, wasm, man)
		if err != nil {
			return fail(&exitError{exitBadInput, fmt.Errorf("module[%d] (%s): %w", i, mc.Name, err)})
		}
		sv.close = append(sv.close, func() { m.Close(context.Background()) })
		if m.Name() != mc.Name {
			return fail(&exitError{exitBadInput, fmt.Errorf("module[%d]: %s's manifest names it %q, not %q", i, wasm, m.Name(), mc.Name)})
		}
		c := serve.NewCompiled(ctx, m, 10*time.Second)
		c.IdleTimeout = mc.IdleTimeout.Duration // 0 with keep_warm
		if ok, why := c.Ready(); !ok {
			log.Warn("module not ready", "module", mc.Name, "reason", why)
		}
		mods[mc.Name] = c
	}
	for _, b := range dc.Bindings {
		for _, name := range b.Modules() {
			if _, ok := mods[name]; ok {
				continue
			}
			if rd == nil {
				return fail(&exitError{exitBadInput, fmt.Errorf("binding %s: module %q is neither a [[module]] of the device config nor deployed (no --group rollouts)", b.Name, name)})
			}
			mods[name] = serve.Deployed{D: rd.Deployer(), Name: name}
		}
	}
	var nc *nats.Conn
	if dc.NeedsNATS() {
		if ns == nil {
			var err error
			if ns, err = serve.StartLocalNATS(ctx, dc); err != nil {
				return fail(&exitError{exitFailure, err})
			}
			sv.close = append(sv.close, func() { ns.Shutdown(); ns.WaitForShutdown() })
		}
		var err error
		if nc, err = nats.Connect("", nats.InProcessServer(ns), nats.Name("fennec-serve")); err != nil {
			return fail(&exitError{exitFailure, err})
		}
		sv.close = append(sv.close, nc.Close)
		if dc.MQTT.Listen != "" && !dc.MQTT.DurableMessages {
			if what, err := serve.MemoryMQTTMessages(nc); err != nil || what == "in use" {
				log.Warn("MQTT message stream left on file: QoS 1 publishes wait for a disk sync each", "stream", serve.MQTTMessagesStream, "err", err, "did", what)
			} else {
				log.Debug("MQTT message stream in memory", "stream", serve.MQTTMessagesStream, "did", what)
			}
		}
		if dc.NATS.Listen != "" {
			fmt.Fprintf(out, "device nats-server on %s\n", ns.ClientURL())
		}
		if dc.MQTT.Listen != "" {
			fmt.Fprintf(out, "device MQTT listener on %s\n", dc.MQTT.Listen)
		}
	}
	s, err := serve.New(serve.Config{Device: dc, Modules: mods, Conn: nc, Registerer: reg, Logger: log, Dir: dir,
		AfterTrim: debug.FreeOSMemory})
	if err != nil {
		return fail(&exitError{exitBadInput, err})
	}
	if err := s.Start(ctx); err != nil {
		return fail(&exitError{exitFailure, err})
	}
	sv.srv = s
	// Loading the modules leaves garbage (decoded and instrumented
	// binaries) several times what stays live; give it back now rather
	// than at the scavenger's pace, which keeps up to the next GC goal.
	debug.FreeOSMemory()
	if a := s.Addr(); a != "" {
		fmt.Fprintf(out, "serving http://%s (/v1/modules/{module}/{entry}, /metrics, /healthz, /readyz)\n", a)
	}
	fmt.Fprintf(out, "device %s serves %d bindings\n", dc.Device, len(dc.Bindings))
	return sv, nil
}

// leafServes makes lc's server carry dc's bindings (fennec agent --leaf
// --device-config): dc's MQTT listener and [tls] go to the leaf's server,
// [nats] listen opens its client listener (as --local-listen does; both
// set must agree), and dc must name the credentials' device, or what its
// bindings publish on alerts.{device} would miss the outbox's subjects.
// The leaf's store (--leaf-dir) replaces [nats] dir.
func leafServes(lc *leaf.Config, dc *serve.DeviceConfig, path string) error {
	if dc.Device != lc.Device {
		return &exitError{exitUsage, fmt.Errorf("%s: device = %q, but the credentials are device %q's: with --leaf its bindings publish on the leaf's outbox subjects (alerts.%s...); set device = %q", path, dc.Device, lc.Device, lc.Device, lc.Device)}
	}
	if l := dc.NATS.Listen; l != "" {
		if lc.Listen != "-" && lc.Listen != "" && lc.Listen != l {
			return &exitError{exitUsage, fmt.Errorf("%s: [nats] listen = %q and --local-listen %q: with --leaf both open the leaf's server; give one", path, l, lc.Listen)}
		}
		lc.Listen = l
	}
	conf, err := dc.ServerOptions()
	if err != nil {
		return &exitError{exitBadInput, err}
	}
	lc.Configure = conf
	return nil
}

// stop drains the calls in flight (up to 30s) and releases everything.
func (sv *serving) stop() {
	if sv == nil {
		return
	}
	if sv.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		sv.srv.Shutdown(ctx)
		cancel()
	}
	for i := len(sv.close) - 1; i >= 0; i-- {
		sv.close[i]()
	}
}

// registerAgentMetrics exports an agent's federation counters.
func registerAgentMetrics(reg prometheus.Registerer, stats func() federation.AgentStats) error {
	for _, m := range []struct {
		name, help string
		v          func(federation.AgentStats) float64
	}{
		{"fennec_federation_device_rounds_total", "Rounds this device was sampled for.", func(s federation.AgentStats) float64 { return float64(s.Rounds) }},
		{"fennec_federation_device_updates_accepted_total", "Updates this device submitted that the hub accepted.", func(s federation.AgentStats) float64 { return float64(s.Accepted) }},
		{"fennec_federation_device_updates_refused_total", "Rounds this device refused.", func(s federation.AgentStats) float64 { return float64(s.Refused) }},
		{"fennec_federation_device_rounds_failed_total", "Rounds this device failed.", func(s federation.AgentStats) float64 { return float64(s.Failed) }},
		{"fennec_federation_device_received_bytes_total", "Model bytes this device received.", func(s federation.AgentStats) float64 { return float64(s.BytesIn) }},
		{"fennec_federation_device_sent_bytes_total", "Update bytes this device sent.", func(s federation.AgentStats) float64 { return float64(s.BytesOut) }},
	} {
		v := m.v
		if err := reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.name, Help: m.help}, func() float64 { return v(stats()) })); err != nil {
			return errors.Join(fmt.Errorf("metrics: %s", m.name), err)
		}
	}
	return nil
}

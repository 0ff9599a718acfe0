// Package serve is a device's serving layer: it binds the entrypoints of
// the modules a device runs (a deploy.Deployer's current version, or a
// plain wasm file and its manifest) to the device's traffic, over HTTP
// (POST /v1/modules/{module}/{entry}, CBOR or JSON), NATS (request-reply,
// and subscribe-and-publish with subject templates and queue groups) and
// MQTT 3.1.1 (through nats-server's own MQTT listener, which maps topic
// a/b to subject a.b), as a device configuration file says
// (ParseDeviceConfig).
//
// Every call runs on the runtime's warm pool (runtime.Module.Call) under
// the manifest's deadline. Each binding has its own concurrency and a
// bounded queue; a request that finds both full, or waits too long, is
// shed at once with a counted, logged reason (429 on HTTP, an error reply
// on NATS), so nothing queues without bound.
//
// A Server registers Prometheus metrics (fennec_module_calls_total,
// fennec_module_call_duration_seconds, fennec_binding_shed_total, ...) on
// the registerer it is given and serves /metrics, /healthz and /readyz
// beside the bindings; MetricsHandler, Healthz and ReadyHandler let other
// processes (the hub) serve theirs the same way.
//
//	dc, err := serve.ReadDeviceConfig("device.toml")
//	srv, err := serve.New(serve.Config{Device: dc, Modules: mods, Conn: nc})
//	err = srv.Start(ctx)
//	defer srv.Shutdown(ctx)
package serve

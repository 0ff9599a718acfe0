// Package federation runs federated training across devices.
//
// A Hub coordinates the rounds: it embeds nats-server with JetStream (or
// uses an existing NATS cluster), samples the available devices each
// round, sends them signed tasks, collects their signed, chunked CBOR
// updates until the deadline and aggregates them with a Strategy
// (NewStrategy for the built-in ones, WasmStrategy for a module's
// `aggregate`). Global models and checkpoints live in a JetStream object
// store and round state in a KV bucket, so a restarted hub resumes from
// the last completed round. Its lifecycle is nats-server's: NewHub,
// Start, Ready, then Shutdown; Done closes when the configured rounds are
// complete.
//
// An Agent is a device: it joins with explicit credentials (DeviceKey,
// FormatCreds, ParseCreds), trains the global model on its local Dataset
// with a Trainer (a WasmTrainer runs a module's `train` entrypoint in the
// fennec runtime) and sends its update. NewAgent, Start, then Close.
//
// A round may run in a privacy mode (ModeNames): the hub side is a
// HubPrivacy (HubConfig.Privacy), the device side a DevicePrivacy
// (AgentConfig.NewMode); see docs/PRIVACY.md.
//
// Simulate runs a hub and N devices in one process, over in-process
// connections, with per-round Progress: for experiments, benchmarks and
// the demo.
//
// Models, updates and training data are the ABI's CBOR structures
// (docs/ABI.md "Shared CBOR structures"): Model, Tensor, Dataset,
// Settings. Everything a guest, a model file or a peer sends is checked
// before use. Configurations follow one rule: the zero value of a field
// is its default, a negative one is an error naming the field.
//
// The implementation lives in federation/internal/...; this package's
// types are converted to it at the boundary.
package federation

// Package federation runs federated training rounds across devices: a hub
// (embedded NATS + JetStream, or an existing NATS cluster) that samples
// devices, collects signed chunked CBOR updates and aggregates them with a
// strategy; agents that train the global model on local data through a
// Wasm module's `train` entrypoint; and Simulate, which runs a hub and N
// devices in one process with per-round progress.
//
// Lifecycle of a hub, like nats-server's: NewHub, Start, Ready, then
// Shutdown; Done closes when the configured rounds are complete. Global
// models and checkpoints live in a JetStream object store and round state
// in a JetStream KV bucket, so a restarted hub resumes from the last
// completed round.
//
// The implementation lives in federation/internal/...; this package
// re-exports its types.
package federation

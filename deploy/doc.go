// Package deploy ships modules to devices safely: signed bundles, the trust
// policy that decides whether a device runs one, an append-only audit log of
// every decision, an on-disk store of the last good bundles that survives
// kill -9, hot swap with rollback, and rollout to device groups over NATS
// JetStream with per-device credentials.
//
// A bundle is a module's manifest (TOML) and Wasm binary in a CBOR envelope
// with their SHA-256 digest and Ed25519 signatures: a publisher's over the
// content and, for a downgrade, an operator's authorising the rollback.
package deploy

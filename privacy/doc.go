// Package privacy groups fennec's privacy libraries: differential privacy
// (privacy/dp), secure aggregation (privacy/secagg) and threshold homomorphic
// encryption (privacy/he). They are plain libraries and know nothing of Wasm.
package privacy

// Package federation runs federated training rounds across devices: the hub
// side (round state, aggregation strategies) and the device side.
package federation

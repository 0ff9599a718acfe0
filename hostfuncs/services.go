package hostfuncs

import "time"

// Services are the host-side services that host functions of the optional
// groups use. The command wires them (a budget ledger, HE key material, a
// federation client); a nil service makes its functions answer EDENIED or
// ESTATE with a message saying what is not configured.
type Services struct {
	Privacy *PrivacyServices
	// NN holds the operator's models for wasi_ephemeral_nn and fennec_nn.
	NN *NNServices
}

// CallInfo is what the host says about one entrypoint call, beyond its
// input: for example the dataset whose privacy budget the call's releases
// are charged to. The guest cannot choose it.
type CallInfo struct {
	Dataset string
	// Deadline, when not zero, is when the call must stop. From then on
	// every host call traps the guest (ErrDeadline) in its prologue, and
	// long host functions trap between bounded blocks of their work, in
	// every preemption mode (docs/ABI.md, "Deadlines").
	Deadline time.Time
}

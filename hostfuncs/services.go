package hostfuncs

import (
	"time"

	"github.com/fennec-edge/fennec/privacy/dpsgd"
)

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
	// DPSGDShare, when set, is the call's grant of a reduced DP-SGD noise
	// share, made by the device's trusted side (its federation mode client)
	// for a step whose sum leaves only inside a verified secure aggregate:
	// dp_sgd_begin then runs one step, and dp_sgd_step noises the sum with
	// N(0, (z*clip)^2 / Divisor), seals it in the grant and writes zeros to
	// the guest's outputs (docs/ABI.md, "dp_sgd_step"). A guest cannot set
	// it.
	DPSGDShare *dpsgd.Share
}

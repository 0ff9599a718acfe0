package federation

import (
	"errors"

	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/strategy"
)

// Errors callers may match with errors.Is.
var (
	// ErrNoUpdates: a strategy was asked to aggregate no updates.
	ErrNoUpdates = strategy.ErrNoUpdates
	// ErrUpdateLength: an update's length differs from the global model's.
	ErrUpdateLength = strategy.ErrLength
	// ErrLayout: a model's tensors (names, dtypes, shapes) differ from the
	// layout expected (an update against the global model, a checkpoint).
	ErrLayout = model.ErrLayout
	// ErrNoSecretFile: FleetSecretFile was given neither a fleet secret
	// file nor a data directory to keep one in.
	ErrNoSecretFile = errors.New("no fleet secret file, and no data directory to keep one in")
	// ErrPrivacyAccounting: the hub's store holds privacy accounting its
	// mode cannot go on from (another mode's, malformed), and
	// HubConfig.ResetPrivacy is not set (fennec hub --reset-privacy).
	ErrPrivacyAccounting = hub.ErrAccounting
	// ErrNoLedger: the hub's privacy mode trains with DP-SGD on the device
	// (ModeTrainsDPSGD), whose releases are charged to the device's own
	// budget ledger, and the agent's WasmTrainer names no Dataset to charge
	// them to (fennec agent sets it with --ledger).
	ErrNoLedger = errors.New("the device trains with DP-SGD charged to its own privacy ledger, and its WasmTrainer names no Dataset to charge (fennec agent: --ledger)")
)

// Package hook is the seam for per-round privacy modes (dp, secagg, he,
// secagg+dp, implemented in privacy/...): a round carries a mode name, and
// the hub and each device look the mode up and run its transforms. With no
// mode ("") a round is plain FedAvg-style exchange.
package hook

import (
	"context"

	"github.com/fennec-edge/fennec/federation/internal/model"
	"github.com/fennec-edge/fennec/federation/internal/strategy"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/privacy/dpsgd"
)

// RoundInfo describes the round a transform runs in.
type RoundInfo struct {
	Round   uint64   // round id (never reused)
	Version uint64   // global model version the round starts from
	Mode    string   // the round's privacy mode
	Devices []string // the sampled devices, sorted
	// Available is the number of devices the hub sampled Devices from,
	// uniformly without replacement: len(Devices)/Available is the
	// round's sampling rate (0: not known, e.g. a transform driven
	// outside a hub).
	Available int
	Device    string // on a device: its own id
}

// HubTransform is the hub side of a mode.
type HubTransform interface {
	// Prepare returns per-round parameters sent to every sampled device in
	// its task (Task.extra), e.g. secure-aggregation public keys.
	Prepare(ctx context.Context, info RoundInfo) (map[string][]byte, error)
	// PreAggregate transforms the received updates before the strategy
	// (e.g. unmask a secure-aggregation sum, clip for DP).
	PreAggregate(ctx context.Context, info RoundInfo, updates []strategy.ModelUpdate) ([]strategy.ModelUpdate, error)
	// PostAggregate transforms the new global model (e.g. add DP noise).
	PostAggregate(ctx context.Context, info RoundInfo, global model.Model) (model.Model, error)
}

// ClientTransform is the device side of a mode.
type ClientTransform interface {
	// Transform rewrites the device's trained update before it is sent
	// (e.g. clip and noise, mask) and may add extras to it. extra holds the
	// task's parameters from HubTransform.Prepare.
	Transform(ctx context.Context, info RoundInfo, extra map[string][]byte, global model.Model,
		update *model.Model, numExamples uint64) (map[string][]byte, error)
}

// TrainClient is a ClientTransform that also decides how the device trains (the
// DP-SGD modes: the DP-SGD settings for its own patients) and what it may
// report beside its protected update.
type TrainClient interface {
	ClientTransform
	// TrainSettings sets s (the task's settings, whose DP the hub may not
	// set) before the device trains; units is the device's number of units
	// of privacy (patients). An error refuses the round.
	TrainSettings(ctx context.Context, info RoundInfo, extra map[string][]byte, s *wire.Settings, units int) error
	// ReleaseMetrics are metrics the device may send with its update in a
	// privacy mode: they must not depend on its data (its privacy spend).
	ReleaseMetrics() map[string]float64
}

// ShareClient is a TrainClient whose rounds may grant the device's host a
// reduced DP-SGD noise share (secagg+dpsgd): the agent passes the grant of
// the round, made in TrainSettings, to the trainer (train.Input.Share).
// Nil: none (the full noise).
type ShareClient interface {
	TrainClient
	DPSGDShare(round uint64) *dpsgd.Share
}

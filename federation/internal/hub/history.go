package hub

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/fxamacker/cbor/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fennec-edge/fennec/federation/internal/model"
)

// The hub stores every round's Report in its KV bucket (Hub.bucket
// "state") under reportKey(round), written once, after the round.
const reportPrefix = "round."

func reportKey(round uint64) string { return reportPrefix + strconv.FormatUint(round, 10) }

// Bounds of the round history and of one stored report.
const (
	// MaxHistory is the most reports History reads in one call.
	MaxHistory = 10000
	// MaxReportBytes bounds a stored report (NATS's largest message is
	// 64 MiB, its default 1 MiB; a report of 10,000 participants is
	// ~200 KB).
	MaxReportBytes = 8 << 20
	// MaxEvalMetrics bounds Report.EvalMetrics.
	MaxEvalMetrics = 16
	// historyMisses is how many missing round keys History steps over
	// beyond the n it was asked for: a round a hub was stopped in leaves
	// no report, so ids have gaps.
	historyMisses = 64
)

// reportDec decodes stored reports: bounded like every decoder of the
// hub's (model.Unmarshal), with room for a round of many devices, and
// ignoring fields a newer hub added.
var reportDec = func() cbor.DecMode {
	m, err := cbor.DecOptions{
		MaxNestedLevels:  8,
		MaxArrayElements: 1 << 17,
		MaxMapPairs:      1 << 17,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// DecodeReport decodes a stored round report from b, bytes read from the
// store and so untrusted: at most MaxReportBytes, bounded collections,
// and the report must be one a hub writes (a round id, a status, counts
// that add up). Reports written before a field existed decode with it
// zero.
func DecodeReport(b []byte) (Report, error) {
	if len(b) > MaxReportBytes {
		return Report{}, fmt.Errorf("round report: %d bytes, more than %d", len(b), MaxReportBytes)
	}
	var r Report
	if err := reportDec.Unmarshal(b, &r); err != nil {
		return Report{}, fmt.Errorf("round report: %w", err)
	}
	if err := r.check(); err != nil {
		return Report{}, fmt.Errorf("round report %d: %w", r.Round, err)
	}
	return r, nil
}

func (r *Report) check() error {
	switch {
	case r.Round == 0:
		return errors.New("no round id")
	case r.Status != "completed" && r.Status != "failed":
		return fmt.Errorf("status %q is neither completed nor failed", r.Status)
	case r.Sampled < 0 || r.Available < 0 || r.Received < 0 || r.Refused < 0 || r.Duration < 0:
		return errors.New("a negative count or duration")
	case r.Sampled > r.Available && r.Available > 0:
		return fmt.Errorf("%d sampled of %d available", r.Sampled, r.Available)
	case r.Received > r.Sampled || len(r.Participants) > r.Sampled || len(r.Participants)+len(r.Dropped) > r.Sampled:
		return fmt.Errorf("more participants (%d received, %d listed) or stragglers (%d) than the %d sampled", r.Received, len(r.Participants), len(r.Dropped), r.Sampled)
	case len(r.Rejected) > r.Sampled || len(r.Clamped) > r.Sampled:
		return fmt.Errorf("more rejected (%d) or clamped (%d) devices than the %d sampled", len(r.Rejected), len(r.Clamped), r.Sampled)
	case len(r.EvalMetrics) > MaxEvalMetrics:
		return fmt.Errorf("%d evaluation metrics, more than %d", len(r.EvalMetrics), MaxEvalMetrics)
	case r.Privacy != nil && (r.Privacy.Releases < 0 || r.Privacy.Contributors < 0 || r.Privacy.Excluded < 0 || r.Privacy.OutOfRange < 0):
		return errors.New("a negative count in the privacy status")
	}
	return nil
}

// History returns the stored reports of the last n rounds (at most
// MaxHistory) before the hub's next round, oldest first: the rounds of
// earlier runs on this store as well as this one's. A report that does
// not decode, or that names another round than its key, is logged and
// left out; rounds without a report (a round the hub was stopped in)
// are skipped. A report stored before Report.Time existed reads back
// with the time its store entry was written. The error is the store's
// (unreachable, ctx done).
//
// A round that ends while History reads is in it if its report was
// stored before History reached its key: a caller that must see every
// round once takes OnRound's reports from before it calls History and
// merges by round id.
func (h *Hub) History(ctx context.Context, n int) ([]Report, error) {
	n = min(n, MaxHistory)
	if n <= 0 {
		return nil, nil
	}
	select {
	case <-h.ready:
	default:
		return nil, errors.New("hub: not started")
	}
	h.mu.Lock()
	next := h.state.NextRound
	h.mu.Unlock()
	var out []Report
	misses := 0
	for r := next - 1; r >= 1 && len(out) < n && misses <= historyMisses; r-- {
		e, err := h.kv.Get(ctx, reportKey(r))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			misses++
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("hub: read round report %d: %w", r, err)
		}
		rep, err := DecodeReport(e.Value())
		if err == nil && rep.Round != r {
			err = fmt.Errorf("round report stored as round %d names round %d", r, rep.Round)
		}
		if err != nil {
			h.log.Error("stored round report unusable; left out of the history", "key", h.bucket("state")+"/"+reportKey(r), "err", err)
			continue
		}
		if rep.Time.IsZero() {
			rep.Time = e.Created().UTC()
		}
		out = append(out, rep)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Round < out[j].Round })
	return out, nil
}

// finiteMetrics is m without non-finite values, the keys loss and
// accuracy (they have their own fields) and names longer than 64 bytes,
// at most MaxEvalMetrics of them (by name); nil when none is left.
func finiteMetrics(m map[string]float64) map[string]float64 {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if k != "loss" && k != "accuracy" && k != "" && len(k) <= 64 && !math.IsNaN(v) && !math.IsInf(v, 0) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Strings(keys)
	out := make(map[string]float64, min(len(keys), MaxEvalMetrics))
	for _, k := range keys[:min(len(keys), MaxEvalMetrics)] {
		out[k] = m[k]
	}
	return out
}

// evaluate scores the new global model with the hub's Evaluator into rep.
func (h *Hub) evaluate(ctx context.Context, next model.Model, rep *Report) {
	if me, ok := h.cfg.Evaluator.(MetricsEvaluator); ok {
		m, err := me.EvaluateMetrics(ctx, next)
		if err != nil {
			h.log.Warn("evaluation failed", "err", err)
			return
		}
		rep.HasEval, rep.EvalLoss, rep.EvalAccuracy, rep.EvalMetrics = true, m["loss"], m["accuracy"], finiteMetrics(m)
		return
	}
	loss, acc, err := h.cfg.Evaluator.Evaluate(ctx, next)
	if err != nil {
		h.log.Warn("evaluation failed", "err", err)
		return
	}
	rep.HasEval, rep.EvalLoss, rep.EvalAccuracy = true, loss, acc
}

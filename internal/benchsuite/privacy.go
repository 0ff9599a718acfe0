package benchsuite

import (
	"context"
	"crypto/rand"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/fennec-edge/fennec/internal/bench"
	"github.com/fennec-edge/fennec/privacy/dp"
	"github.com/fennec-edge/fennec/privacy/he"
	"github.com/fennec-edge/fennec/privacy/secagg"
)

func init() {
	bench.Register(bench.Case{Group: "privacy", Name: "noise", Doc: "secure discrete Gaussian/Laplace noise samples per second", Run: benchNoise})
	bench.Register(bench.Case{Group: "privacy", Name: "secagg", Doc: "SecAgg+ vs plain aggregation, 100 clients x 100k params", Run: benchSecAgg})
	bench.Register(bench.Case{Group: "privacy", Name: "he", Doc: "threshold-CKKS aggregation, 10 clients x 1M params", Run: benchHE})
}

func benchNoise(ctx context.Context, o bench.Options) ([]bench.Result, error) {
	src := dp.NewSource()
	x := make([]float32, 1<<16)
	g := bench.Time(o, 5, func(n int) {
		for i := 0; i < n; i++ {
			_ = src.AddGaussian32(x[:1024], 1.0)
		}
	}) / 1024
	l := bench.Time(o, 5, func(n int) {
		for i := 0; i < n; i++ {
			_ = src.AddLaplace32(x[:1024], 1.0)
		}
	}) / 1024
	return []bench.Result{
		{Group: "privacy", Name: "noise/gaussian", Value: 1e9 / g, Unit: "samples/s", Note: "discrete Gaussian on a 2^-15 sigma lattice (CKS sampler, ChaCha8)"},
		{Group: "privacy", Name: "noise/laplace", Value: 1e9 / l, Unit: "samples/s", Note: "discrete Laplace on a 2^-40 b lattice"},
	}, nil
}

// plainMsg is what a client sends without secure aggregation: its update as
// a CBOR byte string of little-endian float32 (the Tensor convention).
type plainMsg struct {
	From uint32 `cbor:"1,keyasint"`
	Data []byte `cbor:"2,keyasint"`
}

func f32bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		u := math.Float32bits(v)
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	return b
}

func benchUpdates(n, l int) [][]float32 {
	r := mrand.New(mrand.NewPCG(1, 2))
	u := make([][]float32, n)
	for i := range u {
		u[i] = make([]float32, l)
		for j := range u[i] {
			u[i][j] = float32(r.NormFloat64() * 0.01)
		}
	}
	return u
}

// plainRound: every client encodes its update, the hub decodes and sums.
func plainRound(ups [][]float32) (time.Duration, time.Duration, int) {
	var clientT, hubT time.Duration
	bytes := 0
	sum := make([]float64, len(ups[0]))
	for i, u := range ups {
		t0 := time.Now()
		msg, _ := cbor.Marshal(plainMsg{From: uint32(i + 1), Data: f32bytes(u)})
		clientT += time.Since(t0)
		bytes += len(msg)
		t0 = time.Now()
		var m plainMsg
		_ = cbor.Unmarshal(msg, &m)
		for j := range sum {
			b := m.Data[4*j:]
			sum[j] += float64(math.Float32frombits(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24))
		}
		hubT += time.Since(t0)
	}
	return clientT, hubT, bytes
}

// secaggRound plays a SecAgg+ round in this process; it returns the total
// client time, the slowest single client, the hub time, and the bytes every
// client sent and received.
func secaggRound(cfg secagg.Config, ups [][]float32, dropped int) (clientT, maxClient, hubT time.Duration, bytes int, err error) {
	srv, err := secagg.NewServer(cfg)
	if err != nil {
		return
	}
	per := make([]time.Duration, cfg.NumClients)
	cs := make([]*secagg.Client, cfg.NumClients)
	timed := func(i int, f func() error) error {
		t0 := time.Now()
		err := f()
		per[i] += time.Since(t0)
		return err
	}
	hub := func(f func() error) error { t0 := time.Now(); err := f(); hubT += time.Since(t0); return err }
	for i := range cs {
		var m []byte
		if err = timed(i, func() (e error) {
			if cs[i], e = secagg.NewClient(cfg, uint32(i+1)); e != nil {
				return e
			}
			m, e = cs[i].AdvertiseKeys()
			return e
		}); err != nil {
			return
		}
		bytes += len(m)
		if err = hub(func() error { return srv.AddKeys(m) }); err != nil {
			return
		}
	}
	var dir []byte
	if err = hub(func() (e error) { dir, e = srv.Directory(); return }); err != nil {
		return
	}
	for i, c := range cs {
		var m []byte
		bytes += len(dir)
		if err = timed(i, func() (e error) { m, e = c.ShareKeys(dir); return }); err != nil {
			return
		}
		bytes += len(m)
		if err = hub(func() error { return srv.AddShares(m) }); err != nil {
			return
		}
	}
	var dels map[uint32][]byte
	if err = hub(func() (e error) { dels, e = srv.Deliveries(); return }); err != nil {
		return
	}
	for i, c := range cs[dropped:] {
		i += dropped
		var m []byte
		d := dels[c.ID()]
		bytes += len(d)
		if err = timed(i, func() (e error) { m, e = c.MaskedInput(d, ups[i]); return }); err != nil {
			return
		}
		bytes += len(m)
		if err = hub(func() error { return srv.AddMasked(m) }); err != nil {
			return
		}
	}
	var req []byte
	if err = hub(func() (e error) { req, e = srv.UnmaskRequest(); return }); err != nil {
		return
	}
	for i, c := range cs[dropped:] {
		i += dropped
		var m []byte
		bytes += len(req)
		if err = timed(i, func() (e error) { m, e = c.Unmask(req); return }); err != nil {
			return
		}
		bytes += len(m)
		if err = hub(func() error { return srv.AddUnmask(m) }); err != nil {
			return
		}
	}
	if err = hub(func() (e error) { _, _, e = srv.Result(); return }); err != nil {
		return
	}
	for _, d := range per {
		clientT += d
		maxClient = max(maxClient, d)
	}
	return
}

func benchSecAgg(ctx context.Context, o bench.Options) ([]bench.Result, error) {
	n, l, k, t := 100, 100_000, 16, 9
	if o.Quick {
		n, l, k, t = 12, 5_000, 6, 4
	}
	ups := benchUpdates(n, l)
	var pT, sT, sHub, sMax []float64
	var pBytes, sBytes int
	for rep := 0; rep < 3; rep++ {
		pc, ph, pb := plainRound(ups)
		id := make([]byte, 16)
		rand.Read(id)
		cfg := secagg.Config{RoundID: id, NumClients: n, Neighbors: k, Threshold: t, VectorLen: l, Clip: 1}
		// 5% of the clients drop out after sharing keys.
		sc, smax, sh, sb, err := secaggRound(cfg, ups, n/20)
		if err != nil {
			return nil, err
		}
		pT = append(pT, float64((pc+ph).Microseconds())/1000)
		sT = append(sT, float64((sc+sh).Microseconds())/1000)
		sHub = append(sHub, float64(sh.Microseconds())/1000)
		sMax = append(sMax, float64((smax+sh).Microseconds())/1000)
		pBytes, sBytes = pb, sb
	}
	plainMs := bench.Median(pT)
	total := bench.Median(sT)
	name := fmt.Sprintf("secagg/%dx%d", n, l)
	note := fmt.Sprintf("SecAgg+ degree %d, threshold %d, %d%% dropouts; all parties simulated in one process", k, t, 5)
	return []bench.Result{
		{Group: "privacy", Name: name + "/total-time", Value: total, Unit: "ms", Ref: "plain aggregation (CBOR encode + decode + sum)", RefValue: plainMs, Ratio: plainMs / total, Target: "<= 3x time", Note: note + "; every client's and the hub's work summed"},
		{Group: "privacy", Name: name + "/critical-path", Value: bench.Median(sMax), Unit: "ms", Ref: "plain aggregation", RefValue: plainMs, Ratio: plainMs / bench.Median(sMax), Note: "slowest client + hub (clients run in parallel on their devices)"},
		{Group: "privacy", Name: name + "/hub-time", Value: bench.Median(sHub), Unit: "ms", Note: "hub work alone"},
		{Group: "privacy", Name: name + "/bytes", Value: float64(sBytes), Unit: "B", Ref: "plain upload", RefValue: float64(pBytes), Ratio: float64(pBytes) / float64(sBytes), Target: "<= 2x bytes", Note: "all messages both ways vs plain uploads"},
	}, nil
}

func benchHE(ctx context.Context, o bench.Options) ([]bench.Result, error) {
	n, l := 10, 1_000_000
	ps, insecure := he.Agg14, false
	if o.Quick {
		n, l, ps, insecure = 3, 5_000, he.Test10, true
	}
	crs := make([]byte, 32)
	rand.Read(crs)
	s := he.Setup{Params: ps, Parties: n, CRS: crs, AllowInsecure: insecure}
	agg, err := he.NewAggregator(s)
	if err != nil {
		return nil, err
	}
	parties := make([]*he.Party, n)
	setup0 := time.Now()
	for i := range parties {
		if parties[i], err = he.NewParty(s, uint32(i+1)); err != nil {
			return nil, err
		}
		m, err := parties[i].KeyGenShare()
		if err != nil {
			return nil, err
		}
		if err := agg.AddKeyShare(m); err != nil {
			return nil, err
		}
	}
	pk, err := agg.PublicKey()
	if err != nil {
		return nil, err
	}
	for _, p := range parties {
		if err := p.SetPublicKey(pk); err != nil {
			return nil, err
		}
	}
	setupT := time.Since(setup0)
	ups := benchUpdates(n, l)
	var e2e, clientMax, hubT []float64
	var heBytes int
	var maxErr float64
	for rep := 0; rep < 3; rep++ {
		t0 := time.Now()
		if err := agg.StartRound(l); err != nil {
			return nil, err
		}
		// Devices encrypt in parallel (each would on its own device); the
		// hub adds each update as it arrives.
		msgs := make([][]byte, n)
		encT := make([]time.Duration, n)
		var wg sync.WaitGroup
		var firstErr error
		var mu sync.Mutex
		for i := range parties {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				t := time.Now()
				m, err := parties[i].Encrypt(ups[i])
				encT[i] = time.Since(t)
				mu.Lock()
				defer mu.Unlock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				msgs[i] = m
			}(i)
		}
		wg.Wait()
		if firstErr != nil {
			return nil, firstErr
		}
		h0 := time.Now()
		for _, m := range msgs {
			if err := agg.AddCiphertext(m); err != nil {
				return nil, err
			}
		}
		active := make([]uint32, n)
		for i := range active {
			active[i] = uint32(i + 1)
		}
		req, err := agg.DecryptionRequest(active)
		if err != nil {
			return nil, err
		}
		hub := time.Since(h0)
		shares := make([][]byte, n)
		decT := make([]time.Duration, n)
		for i := range parties {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				t := time.Now()
				m, err := parties[i].DecryptShare(req)
				decT[i] = time.Since(t)
				mu.Lock()
				defer mu.Unlock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				shares[i] = m
			}(i)
		}
		wg.Wait()
		if firstErr != nil {
			return nil, firstErr
		}
		h1 := time.Now()
		for _, m := range shares {
			if err := agg.AddDecryptionShare(m); err != nil {
				return nil, err
			}
		}
		sum, _, err := agg.Result()
		if err != nil {
			return nil, err
		}
		hub += time.Since(h1)
		e2e = append(e2e, float64(time.Since(t0).Microseconds())/1000)
		hubT = append(hubT, float64(hub.Microseconds())/1000)
		var ce, cd time.Duration
		for i := range encT {
			ce, cd = max(ce, encT[i]), max(cd, decT[i])
		}
		clientMax = append(clientMax, float64((ce+cd).Microseconds())/1000)
		heBytes = len(msgs[0]) + len(req) + len(shares[0])
		for j := range sum {
			var want float64
			for i := range ups {
				want += float64(ups[i][j])
			}
			maxErr = math.Max(maxErr, math.Abs(sum[j]-want))
		}
	}
	plain := 4 * l
	slots, ctBytes, sec, _ := he.ParamsInfo(ps)
	name := fmt.Sprintf("he/%dx%d", n, l)
	note := fmt.Sprintf("%s, %d slots/ct, %d B/ct; N-of-N decryption; %d cores", sec, slots, ctBytes, goMaxProcs())
	return []bench.Result{
		{Group: "privacy", Name: name + "/end-to-end", Value: bench.Median(e2e), Unit: "ms", Target: "<= 5 s", Note: note + "; all parties on this machine, devices in parallel goroutines"},
		{Group: "privacy", Name: name + "/device-critical-path", Value: bench.Median(clientMax), Unit: "ms", Note: "slowest device: encrypt + decryption share"},
		{Group: "privacy", Name: name + "/hub-time", Value: bench.Median(hubT), Unit: "ms", Note: "hub: add ciphertexts, build request, combine shares, decode"},
		{Group: "privacy", Name: name + "/bytes-per-device", Value: float64(heBytes), Unit: "B", Ref: "plain float32 upload", RefValue: float64(plain), Ratio: float64(plain) / float64(heBytes), Target: "<= 20x bytes", Note: "ciphertexts up + request (c1) down + decryption share up"},
		{Group: "privacy", Name: name + "/max-abs-error", Value: maxErr, Unit: "abs", Note: "CKKS + flooding error of the decrypted sum (inputs ~N(0, 0.01^2))"},
		{Group: "privacy", Name: name + "/setup", Value: float64(setupT.Microseconds()) / 1000, Unit: "ms", Note: "collective public key generation, once per federation"},
	}, nil
}

func goMaxProcs() int { return runtime.GOMAXPROCS(0) }

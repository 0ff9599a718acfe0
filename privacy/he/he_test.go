package he

import (
	"crypto/rand"
	"errors"
	"math"
	mrand "math/rand/v2"
	"testing"
)

func testSetup(n, t int) Setup {
	crs := make([]byte, 32)
	rand.Read(crs)
	return Setup{Params: Test10, Parties: n, Threshold: t, CRS: crs, AllowInsecure: true}
}

// setupAll runs key generation (and the threshold setup when t < N).
func setupAll(tb testing.TB, s Setup) (*Aggregator, []*Party) {
	tb.Helper()
	agg, err := NewAggregator(s)
	if err != nil {
		tb.Fatal(err)
	}
	parties := make([]*Party, s.Parties)
	for i := range parties {
		p, err := NewParty(s, uint32(i+1))
		if err != nil {
			tb.Fatal(err)
		}
		parties[i] = p
		m, err := p.KeyGenShare()
		if err != nil {
			tb.Fatal(err)
		}
		if err := agg.AddKeyShare(m); err != nil {
			tb.Fatal(err)
		}
	}
	pk, err := agg.PublicKey()
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range parties {
		if err := p.SetPublicKey(pk); err != nil {
			tb.Fatal(err)
		}
	}
	if s.threshold() < s.Parties {
		for _, p := range parties {
			m, err := p.ThresholdShares()
			if err != nil {
				tb.Fatal(err)
			}
			if err := agg.AddThresholdShares(m); err != nil {
				tb.Fatal(err)
			}
		}
		dels, err := agg.ThresholdDeliveries()
		if err != nil {
			tb.Fatal(err)
		}
		for _, p := range parties {
			if err := p.ReceiveThresholdShares(dels[p.id]); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return agg, parties
}

func updates(n, l int) [][]float32 {
	r := mrand.New(mrand.NewPCG(3, 4))
	u := make([][]float32, n)
	for i := range u {
		u[i] = make([]float32, l)
		for j := range u[i] {
			u[i][j] = float32(r.NormFloat64())
		}
	}
	return u
}

func aggregate(t *testing.T, agg *Aggregator, parties []*Party, contributors []int, active []uint32, ups [][]float32) []float64 {
	t.Helper()
	if err := agg.StartRound(len(ups[0])); err != nil {
		t.Fatal(err)
	}
	for _, i := range contributors {
		m, err := parties[i].Encrypt(ups[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := agg.AddCiphertext(m); err != nil {
			t.Fatal(err)
		}
	}
	req, err := agg.DecryptionRequest(active)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range active {
		m, err := parties[id-1].DecryptShare(req)
		if err != nil {
			t.Fatal(err)
		}
		if err := agg.AddDecryptionShare(m); err != nil {
			t.Fatal(err)
		}
	}
	sum, _, err := agg.Result()
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// maxErr compares sum with the exact sum over contributors.
func maxErr(sum []float64, ups [][]float32, contributors []int) float64 {
	var m float64
	for j := range sum {
		var want float64
		for _, i := range contributors {
			want += float64(ups[i][j])
		}
		m = math.Max(m, math.Abs(sum[j]-want))
	}
	return m
}

// CKKS precision: with scale 2^45 and flooding sigma 2^23 the decryption
// error per value has standard deviation about 2^23 * sqrt(N * parties) /
// 2^45; for N = 2^14 and 10 parties 3e-5 std, so 3e-4 bounds the maximum
// over millions of values.
const tolerance = 3e-4

func TestNofN(t *testing.T) {
	s := testSetup(5, 0)
	agg, parties := setupAll(t, s)
	ups := updates(5, 2500) // three ciphertexts, the last partly filled
	all := []int{0, 1, 2, 3, 4}
	sum := aggregate(t, agg, parties, all, []uint32{1, 2, 3, 4, 5}, ups)
	if e := maxErr(sum, ups, all); e > tolerance {
		t.Errorf("max error %v", e)
	}
	// A second round with a dropped-out contributor (device 3 sends no
	// update but still helps decrypt, as N-of-N requires).
	some := []int{0, 1, 3, 4}
	sum = aggregate(t, agg, parties, some, []uint32{1, 2, 3, 4, 5}, ups)
	if e := maxErr(sum, ups, some); e > tolerance {
		t.Errorf("round 2 max error %v", e)
	}
}

func TestTofN(t *testing.T) {
	s := testSetup(6, 3)
	agg, parties := setupAll(t, s)
	ups := updates(6, 1500)
	contributors := []int{0, 1, 2, 4, 5} // device 4 dropped out
	// Only devices 2, 5 and 6 are online to decrypt.
	sum := aggregate(t, agg, parties, contributors, []uint32{2, 5, 6}, ups)
	if e := maxErr(sum, ups, contributors); e > tolerance {
		t.Errorf("max error %v", e)
	}
	sum = aggregate(t, agg, parties, contributors, []uint32{1, 3, 4}, ups)
	if e := maxErr(sum, ups, contributors); e > tolerance {
		t.Errorf("other active set: max error %v", e)
	}
}

// The hub cannot decrypt alone, and devices refuse to decrypt one update.
func TestNoSingleUpdateDecryption(t *testing.T) {
	s := testSetup(4, 0)
	agg, parties := setupAll(t, s)
	ups := updates(4, 100)
	if err := agg.StartRound(100); err != nil {
		t.Fatal(err)
	}
	m, _ := parties[0].Encrypt(ups[0])
	if err := agg.AddCiphertext(m); err != nil {
		t.Fatal(err)
	}
	if _, err := agg.DecryptionRequest([]uint32{1, 2, 3, 4}); !errors.Is(err, ErrAbort) {
		t.Fatalf("hub requested decryption of one update: %v", err)
	}
	// A hub that forges a request for one contribution is refused by devices.
	forged, _ := marshal(DecryptRequest{Round: 9, Contributors: []uint32{1}, Active: []uint32{1, 2, 3, 4}, C1: [][]byte{{1}}})
	if _, err := parties[1].DecryptShare(forged); !errors.Is(err, ErrMessage) {
		t.Errorf("device decrypted a single contribution: %v", err)
	}
	// Decryption with N-1 shares fails (N-of-N).
	m, _ = parties[1].Encrypt(ups[1])
	_ = agg.AddCiphertext(m)
	req, err := agg.DecryptionRequest([]uint32{1, 2, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parties[:3] {
		sh, err := p.DecryptShare(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = agg.AddDecryptionShare(sh)
	}
	if _, _, err := agg.Result(); !errors.Is(err, ErrAbort) {
		t.Errorf("result with 3 of 4 shares: %v", err)
	}
	// A device answers each round once.
	if _, err := parties[0].DecryptShare(req); !errors.Is(err, ErrMessage) {
		t.Errorf("second answer for a round: %v", err)
	}
}

func TestSetupValidate(t *testing.T) {
	s := testSetup(4, 0)
	s.AllowInsecure = false
	if _, err := NewAggregator(s); err == nil {
		t.Error("insecure parameters accepted without AllowInsecure")
	}
	for _, f := range []func(*Setup){
		func(s *Setup) { s.Parties = 1 }, func(s *Setup) { s.Threshold = 1 }, func(s *Setup) { s.Threshold = 5 },
		func(s *Setup) { s.CRS = nil }, func(s *Setup) { s.Params = "nope" },
	} {
		b := testSetup(4, 0)
		f(&b)
		if b.Validate() == nil {
			t.Errorf("bad setup accepted: %+v", b)
		}
	}
	slots, size, sec, err := ParamsInfo(Agg14)
	if err != nil || slots != 16384 || size < 250000 || size > 270000 || sec == "" {
		t.Errorf("agg14: %d slots, %d bytes, %q, %v", slots, size, sec, err)
	}
}

func FuzzAggregatorMessages(f *testing.F) {
	s := testSetup(3, 0)
	s.CRS = make([]byte, 32)
	agg, parties := setupAll(f, s)
	_ = agg.StartRound(10)
	ct, _ := parties[0].Encrypt(make([]float32, 10))
	f.Add(ct)
	f.Add([]byte{0xa1, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		a, _ := NewAggregator(s)
		_ = a.AddKeyShare(data)
		a.pkMsg = []byte{1}
		_ = a.AddThresholdShares(data)
		_ = a.StartRound(10)
		_ = a.AddCiphertext(data)
		a.active = map[uint32]bool{1: true}
		a.decFrom = map[uint32]bool{}
		_ = a.AddDecryptionShare(data)
	})
}

func FuzzPartyMessages(f *testing.F) {
	s := testSetup(3, 2)
	s.CRS = make([]byte, 32)
	f.Add([]byte{0xa1, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, _ := NewParty(s, 1)
		_, _ = p.KeyGenShare()
		_ = p.SetPublicKey(data)
		p.phase = 3
		_ = p.ReceiveThresholdShares(data)
		_, _ = p.DecryptShare(data)
	})
}

func TestEncryptBound(t *testing.T) {
	s := testSetup(4, 0)
	_, parties := setupAll(t, s)
	if _, err := parties[0].Encrypt([]float32{0, MaxAbsSum/4 + 1}); err == nil {
		t.Error("value above MaxAbsSum/Parties accepted")
	}
	if _, err := parties[0].Encrypt([]float32{MaxAbsSum / 4, float32(math.NaN())}); err != nil {
		t.Error(err)
	}
}

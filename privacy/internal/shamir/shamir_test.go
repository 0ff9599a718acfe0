package shamir

import (
	"bytes"
	"crypto/rand"
	"testing"
)

func TestSplitCombine(t *testing.T) {
	secret := make([]byte, SecretSize)
	rand.Read(secret)
	xs := []uint32{1, 2, 3, 4, 5, 6, 7}
	shares, err := Split(nil, secret, 4, xs)
	if err != nil {
		t.Fatal(err)
	}
	// Any 4 shares recover the secret.
	for _, idx := range [][]int{{0, 1, 2, 3}, {6, 4, 2, 0}, {1, 3, 5, 6}, {0, 1, 2, 3, 4, 5, 6}} {
		var px []uint32
		var py [][]byte
		for _, i := range idx {
			px, py = append(px, xs[i]), append(py, shares[i])
		}
		got, err := Combine(px, py)
		if err != nil || !bytes.Equal(got, secret) {
			t.Errorf("subset %v: %x %v", idx, got, err)
		}
	}
	// Three shares give a wrong value (or an error), never the secret.
	got, err := Combine(xs[:3], shares[:3])
	if err == nil && bytes.Equal(got, secret) {
		t.Error("3 of threshold 4 shares recovered the secret")
	}
	// A tampered share is detected or gives a wrong value.
	bad := append([]byte(nil), shares[0]...)
	bad[len(bad)-1] ^= 1
	if got, err := Combine(xs[:4], [][]byte{bad, shares[1], shares[2], shares[3]}); err == nil && bytes.Equal(got, secret) {
		t.Error("tampered share still recovered the secret")
	}
}

func TestSplitErrors(t *testing.T) {
	s := make([]byte, SecretSize)
	if _, err := Split(nil, s[:5], 1, []uint32{1}); err == nil {
		t.Error("short secret accepted")
	}
	if _, err := Split(nil, s, 3, []uint32{1, 2}); err == nil {
		t.Error("threshold above parties accepted")
	}
	if _, err := Split(nil, s, 1, []uint32{1, 1}); err == nil {
		t.Error("duplicate points accepted")
	}
	if _, err := Split(nil, s, 1, []uint32{0, 1}); err == nil {
		t.Error("point 0 accepted")
	}
	if _, err := Combine([]uint32{1}, [][]byte{{1, 2}}); err == nil {
		t.Error("short share accepted")
	}
}

func FuzzCombine(f *testing.F) {
	f.Add([]byte{1, 2, 3}, make([]byte, 3*ShareSize))
	f.Fuzz(func(t *testing.T, xb []byte, yb []byte) {
		n := min(len(xb), len(yb)/ShareSize, 20)
		xs := make([]uint32, n)
		ys := make([][]byte, n)
		for i := 0; i < n; i++ {
			xs[i] = uint32(xb[i])
			ys[i] = yb[i*ShareSize : (i+1)*ShareSize]
		}
		out, err := Combine(xs, ys)
		if err == nil && len(out) != SecretSize {
			t.Fatalf("secret of %d bytes", len(out))
		}
	})
}

package he

import (
	"bytes"
	"testing"
)

// TestEncryptToMatchesMarshal: the message EncryptTo writes in place is
// byte for byte the deterministic CBOR that marshal writes, and its length
// is what EncryptedLen computes without encrypting.
func TestEncryptToMatchesMarshal(t *testing.T) {
	s := testSetup(2, 0)
	agg, parties := setupAll(t, s)
	p := parties[1]
	for _, n := range []int{1, 23, 24, 1023, 1024, 1025, 3000} {
		upd := make([]float32, n)
		for i := range upd {
			upd[i] = float32(i%7) - 3
		}
		want, err := p.EncryptedLen(n)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := p.Encrypt(upd)
		if err != nil {
			t.Fatal(err)
		}
		if len(msg) != want {
			t.Fatalf("n=%d: message of %d bytes, EncryptedLen %d", n, len(msg), want)
		}
		var m CiphertextMsg
		if err := unmarshal(msg, &m, "test"); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		re, err := marshal(m)
		if err != nil || !bytes.Equal(re, msg) {
			t.Fatalf("n=%d: EncryptTo's bytes differ from marshal's (%v)", n, err)
		}
		if err := agg.StartRound(n); err != nil {
			t.Fatal(err)
		}
		if err := agg.AddCiphertext(msg); err != nil {
			t.Fatalf("n=%d: the hub refused the message: %v", n, err)
		}
		if max := agg.MaxCiphertextMsgLen(); max < len(msg) {
			t.Fatalf("n=%d: MaxCiphertextMsgLen %d < a valid message of %d", n, max, len(msg))
		}
		// A short buffer is an error, not a partial write or a panic.
		if _, err := p.EncryptTo(make([]byte, want-1), upd); err == nil {
			t.Fatalf("n=%d: EncryptTo into %d bytes succeeded", n, want-1)
		}
	}
	// The arithmetic for every head size of From, Len and the array, against
	// marshal of a message of the same shape.
	c := p.ctx
	for _, from := range []uint32{1, 23, 24, 255, 256, 1024} {
		for _, n := range []int{1, 24, 1 << 10, 300 << 10} {
			cts := make([][]byte, c.numCts(n))
			for i := range cts {
				cts[i] = make([]byte, c.ctSize)
			}
			b, err := marshal(CiphertextMsg{From: from, Len: n, Cts: cts})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.ciphertextMsgLen(from, n); got != len(b) {
				t.Fatalf("from %d, n %d: computed %d bytes, marshal wrote %d", from, n, got, len(b))
			}
		}
	}
	if _, err := p.EncryptedLen(0); err == nil {
		t.Fatal("EncryptedLen(0) succeeded")
	}
	if _, err := p.EncryptedLen(MaxUpdate + 1); err == nil {
		t.Fatal("EncryptedLen over MaxUpdate succeeded")
	}
}

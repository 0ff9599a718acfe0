package secagg

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

func u32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

// pairKey derives a 32-byte key from an X25519 agreement, bound to the
// round, a purpose label and the ordered pair (a, b).
func pairKey(priv *ecdh.PrivateKey, peerPub []byte, round []byte, label string, a, b uint32) ([]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(peerPub)
	if err != nil {
		return nil, fmt.Errorf("%w: bad public key: %v", ErrMessage, err)
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: key agreement: %v", ErrMessage, err)
	}
	info := string(u32(u32([]byte(label), a), b))
	return hkdf.Key(sha256.New, shared, round, info, 32)
}

// maskSeed is the pairwise mask seed shared by u and v (symmetric).
func maskSeed(priv *ecdh.PrivateKey, peerPub []byte, round []byte, u, v uint32) ([]byte, error) {
	return pairKey(priv, peerPub, round, "fennec/secagg/mask", min(u, v), max(u, v))
}

// selfCommit commits to a self-mask seed.
func selfCommit(round []byte, id uint32, seed []byte) []byte {
	h := sha256.New()
	h.Write([]byte("fennec/secagg/self\x00"))
	h.Write(round)
	h.Write(u32(nil, id))
	h.Write(seed)
	return h.Sum(nil)
}

func seal(key, aad, plaintext []byte) ([]byte, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize())
	rand.Read(nonce)
	return g.Seal(nonce, nonce, plaintext, aad), nil
}

func open(key, aad, box []byte) ([]byte, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	if len(box) < g.NonceSize()+g.Overhead() {
		return nil, fmt.Errorf("%w: share box too short", ErrMessage)
	}
	pt, err := g.Open(nil, box[:g.NonceSize()], box[g.NonceSize():], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: share box does not authenticate", ErrMessage)
	}
	return pt, nil
}

// applyMask adds (sign +1) or subtracts (sign -1) the mask expanded from
// seed by AES-256-CTR (zero IV; every seed is used for one stream) to dst
// in the ring Z_{2^32}.
func applyMask(dst []uint32, seed []byte, sign int) {
	blk, err := aes.NewCipher(seed)
	if err != nil {
		panic("secagg: mask seed is not 32 bytes") // seeds are always HKDF/rand outputs of 32 bytes
	}
	ctr := cipher.NewCTR(blk, make([]byte, aes.BlockSize))
	const chunk = 16 << 10 // words
	buf := make([]byte, 4*chunk)
	for off := 0; off < len(dst); off += chunk {
		n := min(chunk, len(dst)-off)
		b := buf[:4*n]
		clear(b)
		ctr.XORKeyStream(b, b)
		d := dst[off : off+n]
		if sign > 0 {
			for i := range d {
				d[i] += binary.LittleEndian.Uint32(b[4*i:])
			}
		} else {
			for i := range d {
				d[i] -= binary.LittleEndian.Uint32(b[4*i:])
			}
		}
	}
}

func encodeVec(v []uint32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], x)
	}
	return b
}

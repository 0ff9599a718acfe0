// Package shamir implements Shamir's t-of-n secret sharing of 32-byte
// secrets over the prime field GF(2^521 - 1) (the Mersenne prime M521, so
// every 256-bit secret is a field element). A share is the evaluation at a
// non-zero x of a random polynomial of degree t-1 whose constant term is the
// secret; any t shares determine it by Lagrange interpolation at 0 and fewer
// than t reveal nothing about it. The coefficients come from crypto/rand.
package shamir

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// SecretSize is the size of a secret; ShareSize the size of a share's value.
const (
	SecretSize = 32
	ShareSize  = 66 // ceil(521/8)
)

var p = func() *big.Int {
	one := big.NewInt(1)
	return new(big.Int).Sub(new(big.Int).Lsh(one, 521), one)
}()

// ErrShares reports inconsistent or insufficient shares.
var ErrShares = errors.New("shamir: invalid shares")

// Split shares secret (32 bytes) with threshold t among the parties at the
// distinct non-zero points xs, returning one ShareSize-byte value per point.
// rnd is the source of coefficients (crypto/rand.Reader when nil).
func Split(rnd io.Reader, secret []byte, t int, xs []uint32) ([][]byte, error) {
	if len(secret) != SecretSize {
		return nil, fmt.Errorf("shamir: secret must be %d bytes, got %d", SecretSize, len(secret))
	}
	if t < 1 || t > len(xs) {
		return nil, fmt.Errorf("shamir: threshold %d outside 1..%d", t, len(xs))
	}
	if err := distinct(xs); err != nil {
		return nil, err
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	coef := make([]*big.Int, t)
	coef[0] = new(big.Int).SetBytes(secret)
	for i := 1; i < t; i++ {
		c, err := rand.Int(rnd, p)
		if err != nil {
			return nil, fmt.Errorf("shamir: %w", err)
		}
		coef[i] = c
	}
	out := make([][]byte, len(xs))
	y, x := new(big.Int), new(big.Int)
	for j, xv := range xs {
		x.SetUint64(uint64(xv))
		y.SetInt64(0)
		for i := t - 1; i >= 0; i-- { // Horner
			y.Mul(y, x)
			y.Add(y, coef[i])
			y.Mod(y, p)
		}
		out[j] = y.FillBytes(make([]byte, ShareSize))
	}
	return out, nil
}

func distinct(xs []uint32) error {
	seen := make(map[uint32]bool, len(xs))
	for _, x := range xs {
		if x == 0 || seen[x] {
			return fmt.Errorf("%w: share points must be distinct and non-zero (got %d twice or zero)", ErrShares, x)
		}
		seen[x] = true
	}
	return nil
}

// Combine recovers the secret from shares ys at points xs (at least the
// threshold used to split; exactly t are used, the first t). With fewer than
// t shares, or shares of different secrets, the result is a wrong value or,
// when it is not a 32-byte number, ErrShares.
func Combine(xs []uint32, ys [][]byte) ([]byte, error) {
	if len(xs) != len(ys) || len(xs) == 0 {
		return nil, fmt.Errorf("%w: %d points, %d values", ErrShares, len(xs), len(ys))
	}
	if err := distinct(xs); err != nil {
		return nil, err
	}
	vals := make([]*big.Int, len(ys))
	for i, y := range ys {
		if len(y) != ShareSize {
			return nil, fmt.Errorf("%w: share %d has %d bytes, want %d", ErrShares, i, len(y), ShareSize)
		}
		v := new(big.Int).SetBytes(y)
		if v.Cmp(p) >= 0 {
			return nil, fmt.Errorf("%w: share %d is not a field element", ErrShares, i)
		}
		vals[i] = v
	}
	secret := new(big.Int)
	num, den, tmp := new(big.Int), new(big.Int), new(big.Int)
	for i := range xs {
		// Lagrange basis at 0: prod_{j!=i} x_j / (x_j - x_i)
		num.SetInt64(1)
		den.SetInt64(1)
		xi := int64(xs[i])
		for j := range xs {
			if j == i {
				continue
			}
			xj := int64(xs[j])
			num.Mul(num, tmp.SetInt64(xj))
			num.Mod(num, p)
			den.Mul(den, tmp.SetInt64(xj-xi))
			den.Mod(den, p)
		}
		den.ModInverse(den, p)
		num.Mul(num, den)
		num.Mul(num, vals[i])
		secret.Add(secret, num)
		secret.Mod(secret, p)
	}
	if secret.BitLen() > 8*SecretSize {
		return nil, fmt.Errorf("%w: reconstruction is not a %d-byte secret (too few or inconsistent shares)", ErrShares, SecretSize)
	}
	return secret.FillBytes(make([]byte, SecretSize)), nil
}

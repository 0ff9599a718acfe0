package privacy_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/fennec-edge/fennec/sdk"
	"github.com/fennec-edge/fennec/sdk/privacy"
)

// Built for the host, every wrapper reports sdk.ErrNotWasm instead of
// calling an import that does not exist. (The wasm side is tested through
// the runtime in hostfuncs/privacy_e2e_test.go.)
func TestHostBuildReturnsErrNotWasm(t *testing.T) {
	x := new(sdk.Tensor)
	calls := map[string]func() error{
		"Clip":        func() error { _, err := privacy.Clip(x, 1); return err },
		"Gaussian":    func() error { _, err := privacy.Gaussian(x, 1, 1, 1, nil); return err },
		"GaussianOut": func() error { _, err := privacy.Gaussian(x, 1, 1, 1, x); return err },
		"GaussianEps": func() error { _, err := privacy.GaussianEps(x, 1, 1, 1e-5, nil); return err },
		"Laplace":     func() error { _, err := privacy.Laplace(x, 1, 1, x); return err },
		"Remaining":   func() error { _, _, err := privacy.Remaining(); return err },
		"Encrypt":     func() error { _, err := privacy.Encrypt(x, nil); return err },
		"AddEncrypted": func() error {
			_, err := privacy.AddEncrypted([]byte{1})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, sdk.ErrNotWasm) {
			t.Errorf("%s: %v, want ErrNotWasm", name, err)
		}
	}
	if err := privacy.DecryptAggregate(nil); !errors.Is(err, sdk.ErrInvalid) {
		t.Errorf("DecryptAggregate(nil): %v, want ErrInvalid", err)
	}
	if _, err := privacy.Gaussian(nil, 1, 1, 1, nil); !errors.Is(err, sdk.ErrHandle) {
		t.Errorf("Gaussian(nil): %v, want ErrHandle", err)
	}
}

func ExampleGaussian() {
	x := new(sdk.Tensor) // in a guest: an update tensor from sdk.FromF32
	if _, err := privacy.Clip(x, 1.0); err != nil {
		fmt.Println(err == sdk.ErrNotWasm)
	}
	_, err := privacy.Gaussian(x, 1.0, 1.1, 1, nil)
	switch {
	case errors.Is(err, sdk.ErrBudget):
		fmt.Println("the dataset's privacy budget is spent")
	case err != nil:
		fmt.Println(err)
	}
	// Output:
	// true
	// fennec: not running as a wasm guest (build with GOOS=wasip1 GOARCH=wasm)
}

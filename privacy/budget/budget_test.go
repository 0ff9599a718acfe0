package budget

import (
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/fennec-edge/fennec/privacy/dp"
)

func open(t *testing.T, path string) *Ledger {
	t.Helper()
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestChargeRefusesOverspend(t *testing.T) {
	l := open(t, filepath.Join(t.TempDir(), "ledger.json"))
	defer l.Close()
	if err := l.SetBudget("dataset/wdbc", Budget{Epsilon: 1, Delta: 1e-5}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Charge(Charge{Epsilon: 0.6}, "dataset/wdbc"); err != nil {
		t.Fatal(err)
	}
	_, err := l.Charge(Charge{Epsilon: 0.6}, "dataset/wdbc")
	if !errors.Is(err, ErrBudget) {
		t.Fatalf("overspend: %v, want ErrBudget", err)
	}
	t.Log(err)
	st, _ := l.Remaining("dataset/wdbc")
	if st.SpentEpsilon != 0.6 || st.Releases != 1 {
		t.Errorf("refused charge changed the ledger: %+v", st)
	}
	if _, err := l.Charge(Charge{Epsilon: 0.4}, "dataset/wdbc"); err != nil {
		t.Fatalf("spending the exact rest: %v", err)
	}
	if _, err := l.Charge(Charge{Epsilon: 1e-6}, "dataset/wdbc"); !errors.Is(err, ErrBudget) {
		t.Fatalf("charge on an empty budget: %v", err)
	}
	if _, err := l.Charge(Charge{Delta: 2e-5}, "dataset/wdbc"); !errors.Is(err, ErrBudget) {
		t.Fatalf("delta overspend: %v", err)
	}
	if _, err := l.Charge(Charge{Epsilon: 0.1}, "dataset/other"); !errors.Is(err, ErrNoAccount) {
		t.Fatalf("unknown account: %v", err)
	}
	for _, c := range []Charge{{Epsilon: -1}, {Epsilon: math.NaN()}, {Delta: 1}, {Gaussian: &Gaussian{NoiseMultiplier: 0, SamplingRate: 1, Steps: 1}},
		{Gaussian: &Gaussian{NoiseMultiplier: 1, SamplingRate: 0, Steps: 1}}, {Gaussian: &Gaussian{NoiseMultiplier: 1, SamplingRate: 1, Steps: 0}}} {
		if _, err := l.Charge(c, "dataset/wdbc"); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", c, err)
		}
	}
}

func TestChargeAllOrNothing(t *testing.T) {
	l := open(t, filepath.Join(t.TempDir(), "ledger.json"))
	defer l.Close()
	ds, mod := DatasetAccount("wdbc"), ModuleAccount("trainer", "wdbc")
	_ = l.SetBudget(ds, Budget{Epsilon: 3, Delta: 1e-5})
	_ = l.SetBudget(mod, Budget{Epsilon: 1, Delta: 1e-5})
	if _, err := l.Charge(Charge{Epsilon: 0.8}, ds, mod); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Charge(Charge{Epsilon: 0.8}, ds, mod); !errors.Is(err, ErrBudget) {
		t.Fatalf("module overspend: %v", err)
	}
	st, _ := l.Remaining(ds)
	if st.SpentEpsilon != 0.8 {
		t.Errorf("dataset charged though the module account refused: %+v", st)
	}
}

// Gaussian charges compose in RDP: the ledger's spent epsilon equals the
// accountant's, and the budget runs out at the round the accountant says.
func TestGaussianChargesUseRDP(t *testing.T) {
	l := open(t, filepath.Join(t.TempDir(), "ledger.json"))
	defer l.Close()
	_ = l.SetBudget("d", Budget{Epsilon: 3, Delta: 1e-5})
	acc, _ := dp.NewAccountant(nil)
	g := Gaussian{NoiseMultiplier: 1.1, SamplingRate: 0.1, Steps: 1}
	rounds := 0
	for {
		st, err := l.Charge(Charge{Gaussian: &g}, "d")
		if errors.Is(err, ErrBudget) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rounds++
		_ = acc.ComposeSubsampledGaussian(0.1, 1.1, 1)
		want, _, _ := acc.Epsilon(1e-5)
		if math.Abs(st[0].SpentEpsilon-want) > 1e-12 {
			t.Fatalf("round %d: ledger eps %v, accountant %v", rounds, st[0].SpentEpsilon, want)
		}
	}
	_ = acc.ComposeSubsampledGaussian(0.1, 1.1, 1)
	next, _, _ := acc.Epsilon(1e-5)
	if next <= 3 || rounds < 10 {
		t.Errorf("refused after %d rounds, but the next would reach only eps %v", rounds, next)
	}
	// Under basic composition each round would cost GaussianSigma's epsilon;
	// RDP must allow more rounds than that.
	t.Logf("%d rounds of DP-FedAvg fit in epsilon 3", rounds)
}

func TestPersistsAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.json")
	l := open(t, path)
	_ = l.SetBudget("d", Budget{Epsilon: 2, Delta: 1e-5})
	_, _ = l.Charge(Charge{Epsilon: 0.5, Delta: 1e-6, Note: "r1"}, "d")
	_, _ = l.Charge(Charge{Gaussian: &Gaussian{NoiseMultiplier: 2, SamplingRate: 1, Steps: 3}}, "d")
	before, _ := l.Remaining("d")
	if _, err := Open(path); err == nil {
		t.Fatal("a second Open of a ledger in use succeeded")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := open(t, path)
	defer l2.Close()
	after, err := l2.Remaining("d")
	if err != nil || after != before {
		t.Errorf("after restart %+v (%v), before %+v", after, err, before)
	}
}

// A process killed with SIGKILL right after Charge returned has its charge on
// disk.
func TestSurvivesKill(t *testing.T) {
	if p := os.Getenv("FENNEC_BUDGET_CRASH"); p != "" {
		l, err := Open(p)
		if err != nil {
			os.Exit(2)
		}
		if _, err := l.Charge(Charge{Epsilon: 0.25}, "d"); err != nil {
			os.Exit(3)
		}
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	path := filepath.Join(t.TempDir(), "ledger.json")
	l := open(t, path)
	_ = l.SetBudget("d", Budget{Epsilon: 1})
	l.Close()
	for i := 0; i < 2; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSurvivesKill$")
		cmd.Env = append(os.Environ(), "FENNEC_BUDGET_CRASH="+path)
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("child: %v", err)
		}
	}
	l = open(t, path)
	defer l.Close()
	st, _ := l.Remaining("d")
	if st.SpentEpsilon != 0.5 || st.Releases != 2 {
		t.Errorf("after two killed processes: %+v", st)
	}
}

func TestCorruptFileIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.json")
	for _, bad := range []string{"", "{", `{"version":2,"orders":[2],"accounts":{}}`, `{"version":1,"orders":[2],"accounts":{"d":{"budget":{"epsilon":1,"delta":0},"basic_epsilon":-1,"basic_delta":0,"rdp":[0],"releases":0,"updated":"2024-01-01T00:00:00Z"}}}`} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if l, err := Open(path); err == nil {
			l.Close()
			t.Errorf("%q: opened", bad)
		}
	}
}

func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"version":1,"orders":[2,3],"accounts":{"d":{"budget":{"epsilon":1,"delta":1e-5},"basic_epsilon":0.5,"basic_delta":0,"rdp":[0.1,0.2],"releases":1,"updated":"2024-01-01T00:00:00Z"}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseState(data)
		if err != nil {
			return
		}
		l := &Ledger{st: st}
		for name, a := range st.Accounts {
			s := l.status(name, a)
			if math.IsNaN(s.SpentEpsilon) || s.RemainingEpsilon < 0 {
				t.Fatalf("status %+v", s)
			}
		}
	})
}

// A Gaussian charge on a sample drawn without replacement spends the RDP
// of that bound, more than a Poisson sample at the same rate, and survives
// a restart as such.
func TestGaussianWithoutReplacementCharge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.json")
	l := open(t, path)
	_ = l.SetBudget("wor", Budget{Epsilon: 100, Delta: 1e-5})
	_ = l.SetBudget("poisson", Budget{Epsilon: 100, Delta: 1e-5})
	for _, acct := range []string{"wor", "poisson"} {
		if _, err := l.Charge(Charge{Gaussian: &Gaussian{NoiseMultiplier: 1, SamplingRate: 0.2, Steps: 3, WithoutReplacement: acct == "wor"}}, acct); err != nil {
			t.Fatal(err)
		}
	}
	acc, _ := dp.NewAccountant(nil)
	_ = acc.ComposeSampledWithoutReplacementGaussian(0.2, 1, 3)
	want, _, _ := acc.Epsilon(1e-5)
	wor, _ := l.Remaining("wor")
	poi, _ := l.Remaining("poisson")
	if math.Abs(wor.SpentEpsilon-want) > 1e-12 || !(wor.SpentEpsilon > poi.SpentEpsilon) {
		t.Fatalf("without replacement spent %v (accountant %v), Poisson %v", wor.SpentEpsilon, want, poi.SpentEpsilon)
	}
	l.Close()
	l = open(t, path)
	defer l.Close()
	if again, _ := l.Remaining("wor"); again.SpentEpsilon != wor.SpentEpsilon {
		t.Fatalf("after reopening: spent %v, was %v", again.SpentEpsilon, wor.SpentEpsilon)
	}
}

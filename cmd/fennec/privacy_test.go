package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func runPrivacy(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestPrivacyEpsilonCLI(t *testing.T) {
	// Opacus accountants_test.py test_rdp_accountant: 7.32911117143.
	out, err := runPrivacy(t, "privacy", "epsilon", "--q", "0.04", "--sigma", "1.5", "--steps", "2250", "--delta", "1e-5", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Epsilon float64 `json:"epsilon"`
		Order   float64 `json:"order"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err, out)
	}
	if r.Epsilon < 7.329111171 || r.Epsilon > 7.329111172 || r.Order != 3.9 {
		t.Errorf("got %+v", r)
	}
	out, err = runPrivacy(t, "privacy", "epsilon", "--q", "0.0025", "--sigma", "1.3", "--steps", "6000", "--delta", "1e-5",
		"--orders", "1.25,1.5,1.75,2,2.25,2.5,3,3.5,4,4.5,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,128,256,512")
	if err != nil || !strings.Contains(out, "epsilon 0.724223 ") || !strings.Contains(out, "order 19") {
		t.Errorf("TF Privacy Test0: %q %v", out, err)
	}
	_, err = runPrivacy(t, "privacy", "epsilon", "--q", "0.1", "--sigma", "1")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitUsage {
		t.Errorf("missing flags: %v", err)
	}
}

func TestPrivacySigmaCLI(t *testing.T) {
	out, err := runPrivacy(t, "privacy", "sigma", "--epsilon", "1", "--delta", "1e-5", "--sensitivity", "2")
	if err != nil || !strings.HasPrefix(out, "sigma 7.46") {
		t.Errorf("%q %v", out, err)
	}
	_, err = runPrivacy(t, "privacy", "sigma", "--epsilon", "2", "--delta", "1e-5", "--sensitivity", "1", "--classic")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitUsage {
		t.Errorf("classic with epsilon 2: %v", err)
	}
}

func TestPrivacyBudgetCLI(t *testing.T) {
	ledger := filepath.Join(t.TempDir(), "l.json")
	if _, err := runPrivacy(t, "privacy", "budget", "--ledger", ledger, "set", "dataset/x", "--epsilon", "2", "--delta", "1e-6"); err != nil {
		t.Fatal(err)
	}
	out, err := runPrivacy(t, "privacy", "budget", "--ledger", ledger, "show")
	if err != nil || !strings.Contains(out, "dataset/x: epsilon 0 of 2 spent") {
		t.Errorf("%q %v", out, err)
	}
}

package deploy

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/runtime"
)

// A negative duration or count in a deploy config is an error that names
// the field; zero takes the default.
func TestDeployConfigNegative(t *testing.T) {
	dir := t.TempDir()
	store, err := OpenStore(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	pub := mustKey(t, "acme", RolePublisher)
	base := DeployerConfig{Engine: newEngine(t), Store: store, Trust: trustOf([]*PrivateKey{pub}, nil)}
	for _, tc := range []struct {
		field string
		set   func(*DeployerConfig)
	}{
		{"", func(*DeployerConfig) {}},
		{"HealthTimeout", func(c *DeployerConfig) { c.HealthTimeout = -time.Second }},
		{"CrashLoopFailures", func(c *DeployerConfig) { c.CrashLoopFailures = -1 }},
		{"CrashLoopWindow", func(c *DeployerConfig) { c.CrashLoopWindow = -1 }},
		{"MaxBundle", func(c *DeployerConfig) { c.Limits.MaxBundle = -1 }},
	} {
		cfg := base
		tc.set(&cfg)
		d, err := NewDeployer(cfg)
		if tc.field == "" {
			if err != nil {
				t.Fatalf("defaults: %v", err)
			}
			if d.cfg.HealthTimeout != 10*time.Second || d.cfg.CrashLoopFailures != 5 || d.cfg.CrashLoopWindow != time.Minute {
				t.Errorf("defaults not filled: %+v", d.cfg)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s negative: err %v, want one naming the field", tc.field, err)
		}
	}
	for _, lim := range []Limits{{MaxBundle: -1}, {MaxManifest: -1}, {MaxSigs: -1}} {
		if _, err := DecodeBundle(guestBundle(t, pub, "1.0.0"), lim); err == nil || !strings.Contains(err.Error(), "Limits.Max") {
			t.Errorf("DecodeBundle with %+v: %v, want an error naming the field", lim, err)
		}
	}
}

// A closed Deployer or AuditLog refuses with ErrClosed, which callers can
// match as runtime.ErrClosed too.
func TestDeployErrClosed(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, nil)
	if err := r.d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Start(context.Background()); !errors.Is(err, ErrClosed) || !errors.Is(err, runtime.ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	if _, err := r.d.Install(context.Background(), guestBundle(t, r.pub, "1.0.0"), "ops"); !errors.Is(err, ErrClosed) {
		t.Errorf("Install after Close: %v, want ErrClosed", err)
	}
	al, err := OpenAudit(filepath.Join(dir, "a.log"))
	if err != nil {
		t.Fatal(err)
	}
	al.Close()
	if err := al.Append(Record{What: "x"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
}

// The rollout agent follows the same rule: zero takes the default, a
// negative Heartbeat or MaxBundle is an error naming it (before, it
// silently meant the default).
func TestRolloutAgentConfigNegative(t *testing.T) {
	f := newFleet(t, map[string]string{"cam-1": "g"})
	nc := f.connect("cam-1", "cam-1")
	r := newRig(t, t.TempDir(), nil)
	base := AgentConfig{Conn: nc, Device: "cam-1", Group: "g", Deployer: r.d}
	for _, tc := range []struct {
		field string
		set   func(*AgentConfig)
	}{
		{"", func(*AgentConfig) {}},
		{"Heartbeat", func(c *AgentConfig) { c.Heartbeat = -time.Second }},
		{"MaxBundle", func(c *AgentConfig) { c.MaxBundle = -1 }},
	} {
		cfg := base
		tc.set(&cfg)
		_, err := NewAgent(cfg)
		switch {
		case tc.field == "" && err != nil:
			t.Fatalf("defaults: %v", err)
		case tc.field != "" && (err == nil || !strings.Contains(err.Error(), "AgentConfig."+tc.field)):
			t.Errorf("%s negative: %v, want an error naming it", tc.field, err)
		}
	}
}

package deploy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/runtime"
)

// TestServerLifecycle: NewServer validates without starting anything;
// Start starts once; Ready reports it; Shutdown may come before Start and
// more than once.
func TestServerLifecycle(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  ServerConfig
		want string
	}{
		{"no dir", ServerConfig{Access: &Access{}}, "ServerConfig.Dir"},
		{"no access", ServerConfig{Dir: t.TempDir()}, "ServerConfig.Access"},
		{"remote plaintext", ServerConfig{Dir: t.TempDir(), Access: &Access{}, Listen: "0.0.0.0:0"}, "AllowPlaintext"},
	} {
		if _, err := NewServer(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %s", c.name, err, c.want)
		}
	}
	if _, err := NewServer(ServerConfig{Dir: t.TempDir(), Access: &Access{}, Listen: "0.0.0.0:0", AllowPlaintext: true}); err != nil {
		t.Errorf("remote plaintext allowed explicitly: %v", err)
	}
	s, err := NewServer(ServerConfig{Dir: t.TempDir(), Listen: "127.0.0.1:0", Access: &Access{}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Ready(10*time.Millisecond) || s.ClientURL() != "" {
		t.Fatal("ready before Start")
	}
	if _, err := s.Connect(); err == nil {
		t.Fatal("connected before Start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.Ready(time.Second) || !strings.HasPrefix(s.ClientURL(), "nats://127.0.0.1:") {
		t.Fatalf("not ready after Start (%q)", s.ClientURL())
	}
	if err := s.Start(ctx); err == nil {
		t.Fatal("started twice")
	}
	s.Shutdown()
	s.Shutdown()
	if err := s.Start(ctx); err == nil {
		t.Fatal("restarted after Shutdown")
	}
	unstarted, _ := NewServer(ServerConfig{Dir: t.TempDir(), Access: &Access{}})
	unstarted.Shutdown()
}

// TestOpenDeviceConfig: a device's rollout side names what is missing and
// tells a bad trust file apart (the command reports it as bad input).
func TestOpenDeviceConfig(t *testing.T) {
	eng, err := runtime.New(context.Background(), runtime.Config{NoDiskCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(context.Background())
	dir := t.TempDir()
	bad := filepath.Join(dir, "trust.toml")
	os.WriteFile(bad, []byte("[[publisher]]\nname = 3\n"), 0o600)
	ok := DeviceConfig{Engine: eng, ID: "cam-1", Group: "cams", Dir: filepath.Join(dir, "state"), TrustFile: bad}
	for _, c := range []struct {
		name string
		edit func(*DeviceConfig)
		want string
	}{
		{"no engine", func(c *DeviceConfig) { c.Engine = nil }, "DeviceConfig.Engine"},
		{"no id", func(c *DeviceConfig) { c.ID = "" }, "DeviceConfig.ID"},
		{"no group", func(c *DeviceConfig) { c.Group = "" }, "DeviceConfig.Group"},
		{"no dir", func(c *DeviceConfig) { c.Dir = "" }, "DeviceConfig.Dir"},
		{"no trust", func(c *DeviceConfig) { c.TrustFile = "" }, "DeviceConfig.TrustFile"},
		{"negative heartbeat", func(c *DeviceConfig) { c.Heartbeat = -time.Second }, "DeviceConfig.Heartbeat"},
		{"bad trust file", func(*DeviceConfig) {}, "trust.toml:2"},
	} {
		cfg := ok
		c.edit(&cfg)
		_, err := OpenDevice(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %s", c.name, err, c.want)
		}
		if c.name == "bad trust file" && !errors.Is(err, ErrBadTrustFile) {
			t.Errorf("bad trust file: %v does not match ErrBadTrustFile", err)
		}
	}
}

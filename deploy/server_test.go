package deploy

import (
	"context"
	"strings"
	"testing"
	"time"
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
	} {
		if _, err := NewServer(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %s", c.name, err, c.want)
		}
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

package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/internal/testutil"
)

// TestHubAuthByDefault: `fennec hub` listening on every interface admits no
// stranger (a NATS client without device credentials); only --insecure
// opens it, and the hub then warns.
func TestHubAuthByDefault(t *testing.T) {
	for _, insecure := range []bool{false, true} {
		addr := freeAddr(t)
		_, port, _ := net.SplitHostPort(addr)
		ctx, cancel := context.WithCancel(context.Background())
		args := []string{"hub", "--data", filepath.Join(t.TempDir(), "hub"), "--listen", "0.0.0.0:" + port, "--init-mlp", "7,8,1"}
		if insecure {
			args = append(args, "--insecure")
		}
		out, wait := background(ctx, args...)
		if err := testutil.Poll(30*time.Second, 20*time.Millisecond, func() error {
			if !strings.Contains(out.String(), "ready at") {
				return fmt.Errorf("hub not ready:\n%s", out.String())
			}
			return nil
		}); err != nil {
			cancel()
			wait()
			t.Fatal(err)
		}
		nc, err := nats.Connect("nats://127.0.0.1:"+port, nats.Timeout(5*time.Second))
		switch {
		case !insecure && err == nil:
			nc.Close()
			t.Error("a stranger connected to `fennec hub --listen 0.0.0.0`")
		case !insecure:
			t.Logf("stranger refused: %v", err)
		case err != nil:
			t.Errorf("--insecure hub refused a client: %v", err)
		default:
			nc.Close()
			if !strings.Contains(out.String(), "INSECURE") {
				t.Errorf("--insecure hub does not warn:\n%s", out.String())
			}
		}
		cancel()
		if err := wait(); err != nil {
			t.Fatalf("hub: %v\n%s", err, out.String())
		}
	}
}

package hub_test

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/federation/internal/agent"
	"github.com/fennec-edge/fennec/federation/internal/hub"
	"github.com/fennec-edge/fennec/federation/internal/sim"
	"github.com/fennec-edge/fennec/federation/internal/wire"
	"github.com/fennec-edge/fennec/internal/leaf"
	"github.com/fennec-edge/fennec/internal/tlsfiles"
	"github.com/fennec-edge/fennec/internal/tlsfiles/tlstest"
)

func tlsConfigs(t *testing.T, server, client tlsfiles.Config) (*tls.Config, *tls.Config) {
	t.Helper()
	sf, err := tlsfiles.Load(server)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sf.Server()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := tlsfiles.Load(client)
	if err != nil {
		t.Fatal(err)
	}
	return s, cf.Client()
}

// A hub with mutual TLS on its client and leaf listeners: one device
// connects directly, one through its leaf node, both over TLS with their
// certificates, and they train; a plaintext client and a TLS client
// without a certificate are refused.
func TestHubMutualTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "fennec-test")
	hc, hk := ca.Issue(t, "hub")
	dc, dk := ca.Issue(t, "device")
	srv, cli := tlsConfigs(t, tlsfiles.Config{Cert: hc, Key: hk, ClientCA: ca.File}, tlsfiles.Config{CA: ca.File, Cert: dc, Key: dk})
	_, noCert := tlsConfigs(t, tlsfiles.Config{Cert: hc, Key: hk}, tlsfiles.Config{CA: ca.File})
	ids := []string{"dev-0", "dev-1"}
	acc, seeds := accessFleet(t, ids...)
	h := newHub(t, hub.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", LeafListen: "127.0.0.1:0", Access: acc, TLS: srv,
		Rounds: 2, MinDevices: 2, Deadline: 5 * time.Second})
	defer h.Shutdown()
	if !strings.HasPrefix(h.ClientURL(), "tls://") || !strings.HasPrefix(h.LeafURL(), "tls://") {
		t.Fatalf("URLs %s, %s: want tls://", h.ClientURL(), h.LeafURL())
	}
	for i, id := range ids {
		var nc *nats.Conn
		if i == 0 {
			opts, err := deploy.ConnectOptions(seeds[id], id)
			if err != nil {
				t.Fatal(err)
			}
			if nc, err = nats.Connect(h.ClientURL(), append(opts, nats.Secure(cli))...); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
		} else {
			kp, err := deploy.LoadNkey(seeds[id])
			if err != nil {
				t.Fatal(err)
			}
			_, nc = startLeaf(t, h, leaf.Config{Device: id, Nkey: kp, TLS: cli})
		}
		a, err := agent.New(agent.Config{Conn: nc, ID: id, Key: wire.DeviceKey(secret, id), Trainer: net8,
			Data: sim.Dataset(data.TrainX, data.TrainY, data.Features, []int{i, i + 10, i + 20}), Heartbeat: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(context.Background()); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		t.Cleanup(a.Close)
	}
	wait(t, h, 30*time.Second)
	opts, _ := deploy.ConnectOptions(seeds["dev-0"], "dev-0")
	plain := strings.Replace(h.ClientURL(), "tls://", "nats://", 1)
	for name, o := range map[string][]nats.Option{"plaintext": opts, "TLS without a client certificate": append(opts, nats.Secure(noCert))} {
		if nc, err := nats.Connect(plain, append(o, nats.Timeout(5*time.Second))...); err == nil {
			nc.Close()
			t.Errorf("%s client connected to a mutual-TLS hub", name)
		} else {
			t.Logf("%s refused: %v", name, err)
		}
	}
}

// With Access, a listener the network can reach needs TLS or an explicit
// AllowPlaintext.
func TestHubRefusesRemotePlaintext(t *testing.T) {
	acc, _ := accessFleet(t, "dev-0")
	ca := tlstest.NewCA(t, "fennec-test")
	hc, hk := ca.Issue(t, "hub")
	srv, _ := tlsConfigs(t, tlsfiles.Config{Cert: hc, Key: hk}, tlsfiles.Config{})
	for _, tc := range []struct {
		cfg  hub.Config
		want string
	}{
		{hub.Config{Listen: "0.0.0.0:0", Access: acc}, "Listen 0.0.0.0:0 is reachable"},
		{hub.Config{Listen: "127.0.0.1:0", LeafListen: ":7422", Access: acc}, "LeafListen :7422 is reachable"},
		{hub.Config{Listen: "0.0.0.0:0", Access: acc, AllowPlaintext: true}, ""},
		{hub.Config{Listen: "0.0.0.0:0", LeafListen: "0.0.0.0:0", Access: acc, TLS: srv}, ""},
		{hub.Config{Listen: "0.0.0.0:0"}, ""}, // fleet passwords, no access file: unchanged
	} {
		tc.cfg.DataDir, tc.cfg.Secret = t.TempDir(), secret
		_, err := hub.New(tc.cfg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg.Listen, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("listen %s leaf %s: got %v, want %q", tc.cfg.Listen, tc.cfg.LeafListen, err, tc.want)
		}
	}
}

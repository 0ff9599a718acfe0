package serve

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/internal/tlsfiles/tlstest"
)

// recorder is a TCP proxy that keeps every byte it forwards, both ways:
// what a capture on the wire would see.
type recorder struct {
	ln    net.Listener
	mu    sync.Mutex
	buf   bytes.Buffer
	conns []net.Conn
	wg    sync.WaitGroup
}

func newRecorder(t *testing.T, target string) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln}
	t.Cleanup(func() {
		ln.Close()
		r.mu.Lock()
		for _, c := range r.conns {
			c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, c, s)
			r.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				defer r.wg.Done()
				b := make([]byte, 32<<10)
				for {
					n, err := src.Read(b)
					if n > 0 {
						r.mu.Lock()
						r.buf.Write(b[:n])
						r.mu.Unlock()
						dst.Write(b[:n])
					}
					if err != nil {
						dst.Close()
						src.Close()
						return
					}
				}
			}
			r.wg.Add(2)
			go pipe(s, c)
			go pipe(c, s)
		}
	}()
	return r
}

func (r *recorder) addr() string { return r.ln.Addr().String() }

func (r *recorder) saw(marker string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Contains(r.buf.Bytes(), []byte(marker))
}

func (r *recorder) bytes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Len()
}

func clientTLS(t *testing.T, ca *tlstest.CA, cert, key string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if cert != "" {
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		c.Certificates = []tls.Certificate{kp}
	}
	return c
}

// TestTLSListeners serves HTTP, NATS and MQTT bindings with [tls] and a
// client CA (mutual TLS): callers with a certificate get through, the
// bytes on the wire never show the payload, callers without a
// certificate or without TLS are refused, and a renewed certificate is
// served at the next handshake without a restart.
func TestTLSListeners(t *testing.T) {
	probe := module(t, "probe")
	ca := tlstest.NewCA(t, "ward")
	dcert, dkey := ca.Issue(t, "device")
	scert, skey := ca.Issue(t, "sensor")
	np, mp := freeTCP(t), freeTCP(t)
	src := fmt.Sprintf(`
device = "ward3"
[nats]
listen = "127.0.0.1:%d"
dir = %q
[mqtt]
listen = "127.0.0.1:%d"
[tls]
cert = %q
key = %q
client_ca = %q
[[binding]]
name = "http-echo"
module = "probe"
entry = "echo"
source = "http"
[[binding]]
name = "mqtt-echo"
module = "probe"
entry = "echo"
source = "mqtt"
topic = "sensors/bed/+"
publish = "alerts.{device}.{3}"
`, np, t.TempDir(), mp, dcert, dkey, ca.File)
	dc, err := ParseDeviceConfig([]byte(src), "tls.toml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns, err := StartLocalNATS(ctx, dc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	good := clientTLS(t, ca, scert, skey)
	nc, err := nats.Connect(fmt.Sprintf("tls://127.0.0.1:%d", np), nats.Secure(good))
	if err != nil {
		t.Fatal("nats over mutual TLS:", err)
	}
	t.Cleanup(nc.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Device: dc, Modules: map[string]Module{"probe": NewCompiled(ctx, probe, time.Second)}, Conn: nc, Listener: ln,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })

	// HTTP through a recording proxy.
	const marker = "PATIENT-7-SPO2-88"
	rec := newRecorder(t, ln.Addr().String())
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: good}, Timeout: 10 * time.Second}
	body := mustCBOR(t, map[string]any{"note": marker})
	res, err := hc.Post("https://"+rec.addr()+"/v1/modules/probe/echo", MediaCBOR, bytes.NewReader(body))
	if err != nil {
		t.Fatal("https with a client certificate:", err)
	}
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.Contains(out, []byte(marker)) {
		t.Fatalf("https: %d %q", res.StatusCode, out)
	}
	if rec.bytes() < len(marker) || rec.saw(marker) {
		t.Fatalf("the wire (%d bytes) shows the payload in the clear: %v", rec.bytes(), rec.saw(marker))
	}
	// No client certificate, and no TLS at all: refused.
	nocert := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS(t, ca, "", "")}, Timeout: 5 * time.Second}
	if res, err := nocert.Post("https://"+ln.Addr().String()+"/v1/modules/probe/echo", MediaCBOR, bytes.NewReader(body)); err == nil {
		res.Body.Close()
		t.Fatalf("https without a client certificate: %d", res.StatusCode)
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if res, err := plain.Post("http://"+ln.Addr().String()+"/v1/modules/probe/echo", MediaCBOR, bytes.NewReader(body)); err == nil {
		res.Body.Close()
		if res.StatusCode == 200 {
			t.Fatal("plaintext HTTP was served")
		}
	}
	if _, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", np)); err == nil {
		t.Fatal("plaintext NATS connected")
	}

	// MQTT over mutual TLS, through the recorder too.
	mrec := newRecorder(t, fmt.Sprintf("127.0.0.1:%d", mp))
	sub, _ := nc.SubscribeSync("alerts.ward3.*")
	nc.Flush()
	opts := mqtt.NewClientOptions().AddBroker("ssl://" + mrec.addr()).SetClientID("bed-7").SetTLSConfig(good).SetConnectTimeout(5 * time.Second)
	cl := mqtt.NewClient(opts)
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt over TLS: %v", tok.Error())
	}
	defer cl.Disconnect(100)
	if tok := cl.Publish("sensors/bed/7", 1, false, mustCBOR(t, marker)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt publish: %v", tok.Error())
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil || msg.Subject != "alerts.ward3.7" || !bytes.Contains(msg.Data, []byte(marker)) {
		t.Fatalf("mqtt alert %v (%v)", msg, err)
	}
	if mrec.saw(marker) {
		t.Fatal("the MQTT wire shows the payload in the clear")
	}
	for name, o := range map[string]*mqtt.ClientOptions{
		"plaintext":      mqtt.NewClientOptions().AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", mp)).SetClientID("bed-8"),
		"no client cert": mqtt.NewClientOptions().AddBroker(fmt.Sprintf("ssl://127.0.0.1:%d", mp)).SetClientID("bed-9").SetTLSConfig(clientTLS(t, ca, "", "")),
	} {
		o.SetConnectTimeout(3 * time.Second).SetConnectRetry(false).SetAutoReconnect(false)
		c := mqtt.NewClient(o)
		if tok := c.Connect(); tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
			c.Disconnect(10)
			t.Errorf("mqtt %s connected", name)
		}
	}

	// Renewal: a new certificate in the same files is served at the next
	// handshake.
	before := tlstest.Serial(t, dcert)
	ca.Issue(t, "device")
	after := tlstest.Serial(t, dcert)
	seen := func() string {
		c, err := tls.Dial("tcp", ln.Addr().String(), good)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := seen(); got != after.String() || got == before.String() {
		t.Fatalf("after renewal the listener presents serial %s (before %s, renewed %s)", got, before, after)
	}
}

func freeTCP(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A listener reachable from the network refuses to run in plaintext
// unless allowed, and [tls] is checked for its pairs.
func TestTLSConfigRules(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"[http]\nlisten = \"0.0.0.0:8480\"\n", `device.toml:2: field "http.listen": 0.0.0.0:8480 is reachable from the network`},
		{"[mqtt]\nlisten = \":1883\"\n", `field "mqtt.listen": :1883 is reachable`},
		{"[nats]\nlisten = \"10.0.0.5:4222\"\n", `field "nats.listen"`},
		{"[tls]\ncert = \"c.pem\"\n", `field "tls.cert": cert and key go together`},
		{"[tls]\nclient_ca = \"ca.pem\"\n", `field "tls.client_ca": mutual TLS needs`},
	} {
		_, err := ParseDeviceConfig([]byte(c.src), "device.toml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.src, err, c.want)
		}
	}
	for _, ok := range []string{
		"[http]\nlisten = \"127.0.0.1:8480\"\n",
		"[http]\nlisten = \"0.0.0.0:8480\"\n[tls]\nallow_plaintext = true\n",
		"[http]\nlisten = \"0.0.0.0:8480\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
	} {
		if _, err := ParseDeviceConfig([]byte(ok), "device.toml"); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	// The agent's --http override is checked again by New.
	dc, err := ParseDeviceConfig(nil, "--http")
	if err != nil {
		t.Fatal(err)
	}
	dc.HTTP.Listen = "0.0.0.0:0"
	if _, err := New(Config{Device: dc}); err == nil || !strings.Contains(err.Error(), "reachable from the network") {
		t.Errorf("--http 0.0.0.0 without TLS: %v", err)
	}
	// Missing certificate files: a clear error at Start.
	dc, _ = ParseDeviceConfig([]byte("[http]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = \"nope.pem\"\nkey = \"nope-key.pem\"\n"), "/etc/fennec/device.toml")
	s, err := New(Config{Device: dc, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "/etc/fennec/nope.pem") {
		t.Errorf("missing cert: %v", err)
	}
}

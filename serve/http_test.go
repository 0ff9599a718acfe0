package serve

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/fennec-edge/fennec/internal/testutil"
	"github.com/fennec-edge/fennec/sdk"
)

const httpConfig = `
[http]
max_body_bytes = 4096
read_header_timeout = "200ms"

[[binding]]
module = "probe"
entry = "echo"
source = "http"
name = "echo"
concurrency = 2

[[binding]]
module = "probe"
entry = "crash"
source = "http"

[[binding]]
module = "probe"
entry = "fail"
source = "http"

[[binding]]
module = "probe"
entry = "spin"
source = "http"
name = "spin"
concurrency = 1
queue = 1
queue_timeout = "10s"

[[binding]]
module = "risk-infer"
entry = "predict"
source = "http"
name = "score"
`

// riskFeatures is risk-infer's input width (vitals-preprocess's 14
// features, see modules/risk-infer).
const riskFeatures = 14

func riskModel() sdk.Model {
	rng := rand.New(rand.NewPCG(1, 2))
	m := sdk.Model{Name: "risk-mlp", Version: 1}
	w := make([]float32, riskFeatures)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * 0.5)
	}
	m.Tensors = append(m.Tensors, sdk.F32Data("0.weight", []int{riskFeatures, 1}, w), sdk.F32Data("0.bias", []int{1}, []float32{0.1}))
	return m
}

func httpServer(t *testing.T) (*Server, string, func(string, ...string) float64) {
	probe, risk := module(t, "probe"), module(t, "risk-infer")
	ctx := context.Background()
	s, reg, url := startServer(t, httpConfig, map[string]Module{
		"probe": NewCompiled(ctx, probe, time.Second), "risk-infer": NewCompiled(ctx, risk, time.Second)}, nil)
	return s, url, func(name string, labels ...string) float64 { return metric(t, reg, name, labels...) }
}

// TestHTTP calls every kind of request, good and bad, on one server, and
// checks the status, the reason, the counter, and that it keeps serving.
func TestHTTP(t *testing.T) {
	_, url, m := httpServer(t)
	big := bytes.Repeat([]byte("x"), 5000)
	cases := []struct {
		name, method, path, ctype string
		body                      []byte
		status                    int
		reason                    string // in the error body
		counter                   []string
	}{
		{"echo json", "POST", "/v1/modules/probe/echo", "application/json", []byte(`{"a": [1, 2.5, "x"]}`), 200, "", []string{"fennec_module_calls_total", "module", "probe", "entry", "echo", "outcome", "ok"}},
		{"echo cbor", "POST", "/v1/modules/probe/echo", "application/cbor", []byte{0xa1, 0x61, 0x61, 0x01}, 200, "", nil},
		{"json with charset", "POST", "/v1/modules/probe/echo", "application/json; charset=utf-8", []byte(`[]`), 200, "", nil},
		{"unknown module", "POST", "/v1/modules/nope/echo", "application/json", []byte(`{}`), 404, "not_found", []string{"fennec_binding_rejected_total", "binding", "http", "reason", "not_found"}},
		{"unknown entry", "POST", "/v1/modules/probe/grow", "application/json", []byte(`{}`), 404, "not_found", nil},
		{"bad path", "POST", "/v1/modules/probe", "application/json", []byte(`{}`), 404, "not_found", nil},
		{"get", "GET", "/v1/modules/probe/echo", "", nil, 405, "method", []string{"fennec_binding_rejected_total", "reason", "method"}},
		{"wrong content type", "POST", "/v1/modules/probe/echo", "text/plain", []byte("hi"), 415, "content_type", []string{"fennec_binding_rejected_total", "binding", "echo", "reason", "content_type"}},
		{"no content type", "POST", "/v1/modules/probe/echo", "", []byte("hi"), 415, "content_type", nil},
		{"oversized", "POST", "/v1/modules/probe/echo", "application/cbor", append([]byte{0x59, 0x13, 0x88}, big...), 413, "too_large", []string{"fennec_binding_rejected_total", "binding", "echo", "reason", "too_large"}},
		{"malformed json", "POST", "/v1/modules/probe/echo", "application/json", []byte(`{"a": `), 400, "malformed", []string{"fennec_binding_rejected_total", "binding", "echo", "reason", "malformed"}},
		{"json trailing", "POST", "/v1/modules/probe/echo", "application/json", []byte(`{} {}`), 400, "malformed", nil},
		{"json deep", "POST", "/v1/modules/probe/echo", "application/json", []byte(strings.Repeat("[", 40) + strings.Repeat("]", 40)), 400, "malformed", nil},
		{"malformed cbor", "POST", "/v1/modules/probe/echo", "application/cbor", []byte{0xa1, 0x61}, 400, "malformed", nil},
		{"cbor trailing", "POST", "/v1/modules/probe/echo", "application/cbor", []byte{0x01, 0x02}, 400, "malformed", nil},
		{"empty body", "POST", "/v1/modules/probe/echo", "application/cbor", nil, 400, "malformed", nil},
		{"trap", "POST", "/v1/modules/probe/crash", "application/cbor", []byte{0xa0}, 500, "trap", []string{"fennec_module_traps_total", "module", "probe"}},
		{"guest error", "POST", "/v1/modules/probe/fail", "application/json", []byte(`{}`), 422, "guest_error", []string{"fennec_module_calls_total", "entry", "fail", "outcome", "guest_error"}},
		{"deadline", "POST", "/v1/modules/probe/spin", "application/cbor", []byte{0xa0}, 504, "deadline", []string{"fennec_module_deadline_overruns_total", "module", "probe"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before float64
			if c.counter != nil {
				before = m(c.counter[0], c.counter[1:]...)
			}
			req, _ := http.NewRequest(c.method, url+c.path, bytes.NewReader(c.body))
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if c.reason != "" {
				var e struct{ Error, Reason string }
				if strings.HasPrefix(resp.Header.Get("Content-Type"), MediaCBOR) {
					err = cbor.Unmarshal(body, &e)
				} else {
					err = jsonUnmarshal(body, &e)
				}
				if err != nil || e.Reason != c.reason || e.Error == "" {
					t.Fatalf("error body %q (%v), want reason %q and a message", body, err, c.reason)
				}
			} else if c.status == 200 && c.ctype != "" && mediaFormat(c.ctype) == FormatCBOR && !bytes.Equal(body, c.body) {
				t.Fatalf("echo returned %x, want %x", body, c.body)
			}
			if c.counter != nil {
				if after := m(c.counter[0], c.counter[1:]...); after != before+1 {
					t.Fatalf("%v moved from %v to %v, want +1", c.counter, before, after)
				}
			}
			// The server keeps serving after every request.
			if st, b := post(t, url+"/v1/modules/probe/echo", MediaJSON, []byte(`{"ok":true}`)); st != 200 || string(b) != `{"ok":true}` {
				t.Fatalf("after %s: echo %d %s", c.name, st, b)
			}
		})
	}
}

// TestHTTPRiskInfer scores readings with the real risk-infer module, in
// CBOR and with a JSON reply.
func TestHTTPRiskInfer(t *testing.T) {
	_, url, m := httpServer(t)
	in := mustCBOR(t, map[string]any{"model": riskModel(), "records": []map[string]any{{"patient": "p1", "hr": 1.5, "spo2": -2.0}, {"patient": "p2"}}})
	st, body := post(t, url+"/v1/modules/risk-infer/predict", MediaCBOR, in)
	if st != 200 {
		t.Fatalf("status %d: %s", st, body)
	}
	var out struct {
		Scores   []float64 `cbor:"scores"`
		Patients []string  `cbor:"patients"`
	}
	if err := cbor.Unmarshal(body, &out); err != nil || len(out.Scores) != 2 || out.Scores[0] <= 0 || out.Scores[0] >= 1 {
		t.Fatalf("scores %+v (%v)", out, err)
	}
	if got := m("fennec_module_call_duration_seconds", "module", "risk-infer", "entry", "predict"); got < 1 {
		t.Fatalf("duration histogram has %v samples", got)
	}
	// A model with the wrong input width: the module refuses, the server
	// says so and goes on.
	bad := riskModel()
	bad.Tensors[0] = sdk.F32Data("0.weight", []int{3, 1}, []float32{1, 2, 3})
	st, body = post(t, url+"/v1/modules/risk-infer/predict", MediaCBOR, mustCBOR(t, map[string]any{"model": bad, "records": []map[string]any{{}}}))
	if st != 422 {
		t.Fatalf("bad model: status %d: %s", st, body)
	}
	if st, _ := post(t, url+"/v1/modules/risk-infer/predict", MediaCBOR, in); st != 200 {
		t.Fatalf("after a bad model: %d", st)
	}
}

// TestHTTPSlowloris holds a connection that never finishes its headers:
// the server closes it at ReadHeaderTimeout and keeps serving others.
func TestHTTPSlowloris(t *testing.T) {
	_, url, _ := httpServer(t)
	conns := make([]net.Conn, 8)
	for i := range conns {
		c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /v1/modules/probe/echo HTTP/1.1\r\nHost: x\r\nContent-Type: app")
		conns[i] = c
	}
	if st, _ := post(t, url+"/v1/modules/probe/echo", MediaJSON, []byte(`1`)); st != 200 {
		t.Fatalf("with slow connections open: %d", st)
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second)) // a bound on the test, not a wait
		_, err := bufio.NewReader(c).ReadByte()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the server kept a connection whose headers never came")
		}
	}
}

// TestHTTPOverload fills the spin binding (1 running, 1 queued): the next
// request is shed with 429 and counted, and the binding recovers.
func TestHTTPOverload(t *testing.T) {
	_, url, m := httpServer(t)
	var wg sync.WaitGroup
	statuses := make(chan int, 2)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(url+"/v1/modules/probe/spin", MediaCBOR, bytes.NewReader([]byte{0xa0}))
			if err == nil {
				resp.Body.Close()
				statuses <- resp.StatusCode
			}
		}()
		want := float64(i)
		testutil.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
			if a, q := m("fennec_binding_in_flight", "binding", "spin"), m("fennec_binding_queue_depth", "binding", "spin"); a+q < want+1 {
				return fmt.Errorf("in flight %v, queued %v", a, q)
			}
			return nil
		})
	}
	shed := m("fennec_binding_shed_total", "binding", "spin", "reason", "queue_full")
	st, body := post(t, url+"/v1/modules/probe/spin", MediaCBOR, []byte{0xa0})
	if st != 429 || !bytes.Contains(body, []byte("queue_full")) {
		t.Fatalf("overloaded: %d %q, want 429 queue_full", st, body)
	}
	if got := m("fennec_binding_shed_total", "binding", "spin", "reason", "queue_full"); got != shed+1 {
		t.Fatalf("shed counter %v -> %v", shed, got)
	}
	// Shed before the body is read: a full binding answers a request whose
	// body has not arrived (yet) at once, rather than spending the time
	// (and, under overload, the CPU) reading and decoding it.
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/modules/probe/spin HTTP/1.1\r\nHost: x\r\nContent-Type: application/cbor\r\nContent-Length: 1000\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond)) // the spin calls hold the binding for 1 s
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.Contains(line, " 429 ") {
		t.Fatalf("full binding, body not sent: %q %v, want 429 before the body", line, err)
	}
	// A small body that has arrived is skipped and the connection kept: the
	// shed client's next request needs no new connection.
	c2, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(500 * time.Millisecond))
	br := bufio.NewReader(c2)
	for i := 0; i < 2; i++ {
		fmt.Fprintf(c2, "POST /v1/modules/probe/spin HTTP/1.1\r\nHost: x\r\nContent-Type: application/cbor\r\nContent-Length: 1\r\n\r\n\xa0")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("full binding, small body, request %d on one connection: %v", i+1, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 429 || resp.Close {
			t.Fatalf("full binding, small body, request %d: %d (close %v), want 429 keeping the connection", i+1, resp.StatusCode, resp.Close)
		}
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 504 {
			t.Fatalf("admitted spin call: %d, want 504 (its deadline)", s)
		}
	}
	if a, q := m("fennec_binding_in_flight", "binding", "spin"), m("fennec_binding_queue_depth", "binding", "spin"); a != 0 || q != 0 {
		t.Fatalf("after: in flight %v, queued %v", a, q)
	}
}

// TestHTTPAdmissionGivenBack sends more bad bodies than the echo binding
// has admission slots (2 running + 8 queued): each refused request gives
// its slot back, so a good one is still served.
func TestHTTPAdmissionGivenBack(t *testing.T) {
	_, url, m := httpServer(t)
	for i := 0; i < 12; i++ {
		if st, _ := post(t, url+"/v1/modules/probe/echo", MediaJSON, []byte(`{"a":`)); st != 400 {
			t.Fatalf("malformed %d: %d, want 400", i, st)
		}
		if st, _ := post(t, url+"/v1/modules/probe/echo", MediaJSON, bytes.Repeat([]byte("1"), 5000)); st != 413 {
			t.Fatalf("oversized %d: %d, want 413", i, st)
		}
	}
	if st, body := post(t, url+"/v1/modules/probe/echo", MediaJSON, []byte(`1`)); st != 200 {
		t.Fatalf("after refused requests: %d %q", st, body)
	}
	if a, q := m("fennec_binding_in_flight", "binding", "echo"), m("fennec_binding_queue_depth", "binding", "echo"); a != 0 || q != 0 {
		t.Fatalf("after: in flight %v, queued %v", a, q)
	}
}

// TestHealthAndMetrics checks /healthz, /readyz and /metrics; /metrics comes
// first, as a Prometheus server's first scrape does: the readiness gauge must
// not wait for a /readyz request.
func TestHealthAndMetrics(t *testing.T) {
	_, url, _ := httpServer(t)
	for _, c := range []struct{ path, want string }{
		{"/metrics", "fennec_module_ready{module=\"risk-infer\"} 1"},
		{"/healthz", "ok"},
		{"/readyz", "ready"},
	} {
		path, want := c.path, c.want
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Fatalf("%s: %d %q, want %q", path, resp.StatusCode, b, want)
		}
	}
}

// notReady is a module whose health check failed.
type notReady struct{}

func (notReady) Call(context.Context, string, []byte) ([]byte, error) {
	return nil, ErrUnavailable
}
func (notReady) Ready() (bool, string) { return false, "health check failed: test" }

func TestNotReady(t *testing.T) {
	_, reg, url := startServer(t, "[[binding]]\nmodule = \"sick\"\nentry = \"go\"\nsource = \"http\"\nname = \"sick\"\n", map[string]Module{"sick": notReady{}}, nil)
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), "sick: health check failed") {
		t.Fatalf("readyz %d %q", resp.StatusCode, b)
	}
	st, body := post(t, url+"/v1/modules/sick/go", MediaJSON, []byte(`{}`))
	if st != 503 || !strings.Contains(string(body), "not ready") {
		t.Fatalf("call: %d %s", st, body)
	}
	if metric(t, reg, "fennec_binding_shed_total", "binding", "sick", "reason", "unavailable") != 1 {
		t.Fatal("unavailable shed not counted")
	}
}

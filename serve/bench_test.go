package serve

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// BenchmarkBinding compares a call through each binding with a direct
// runtime.Module.Call of the same entry and input, one caller at a time:
// the difference is the binding's overhead (decode, limiter, metrics,
// transport). "echo" is a tiny entry (probe's echo of a 4-byte map),
// "risk" is risk-infer scoring a batch of readings (about 1 ms here).
//
//	go test -run XXX -bench BenchmarkBinding ./serve
func BenchmarkBinding(b *testing.B) {
	probe, risk := module(b, "probe"), module(b, "risk-infer")
	nc, _, _ := natsServer(b)
	ctx := context.Background()
	cfg := `
[[binding]]
module = "probe"
entry = "echo"
source = "http"
[[binding]]
module = "risk-infer"
entry = "predict"
source = "http"
[[binding]]
module = "probe"
entry = "echo"
source = "nats"
subject = "bench.echo"
[[binding]]
module = "risk-infer"
entry = "predict"
source = "nats"
subject = "bench.risk"
`
	srv, _, url := startServer(b, cfg, map[string]Module{"probe": NewCompiled(ctx, probe, time.Second), "risk-infer": NewCompiled(ctx, risk, time.Second)}, nc)
	recs := make([]map[string]any, 64)
	for i := range recs {
		recs[i] = map[string]any{"patient": fmt.Sprint("p", i), "hr": float64(i%7) - 3, "spo2": -1.0, "rr": 0.5}
	}
	cases := []struct {
		name, mod, entry, subject string
		in                        []byte
	}{
		{"echo", "probe", "echo", "bench.echo", mustCBOR(b, map[string]int{"a": 1})},
		{"risk", "risk-infer", "predict", "bench.risk", mustCBOR(b, map[string]any{"model": riskModel(), "records": recs})},
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	// The transports alone, for reference: a plain net/http handler and a
	// plain NATS responder that call the module directly, with no
	// decoding, limiter or metrics.
	raw := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, _ := io.ReadAll(r.Body)
		out, err := mods[r.URL.Query().Get("m")].Call(r.Context(), r.URL.Query().Get("e"), in)
		if err != nil {
			w.WriteHeader(500)
		}
		w.Write(out)
	})}
	rawLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go raw.Serve(rawLn)
	defer raw.Close()
	for _, c := range cases {
		m := mods[c.mod]
		sub, err := nc.Subscribe("raw."+c.subject, func(msg *nats.Msg) {
			out, _ := m.Call(ctx, c.entry, msg.Data)
			msg.Respond(out)
		})
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Unsubscribe()
	}
	for _, c := range cases {
		m := mods[c.mod]
		if _, err := m.Call(ctx, c.entry, c.in); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name+"/direct", func(b *testing.B) {
			for b.Loop() {
				if _, err := m.Call(ctx, c.entry, c.in); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/http", func(b *testing.B) {
			u := url + "/v1/modules/" + c.mod + "/" + c.entry
			for b.Loop() {
				resp, err := client.Post(u, MediaCBOR, bytes.NewReader(c.in))
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatal(resp.Status)
				}
			}
		})
		b.Run(c.name+"/handler", func(b *testing.B) {
			// The HTTP binding's own work without a socket: routing,
			// Content-Type, body limit, decode, limiter, call, metrics.
			h := srv.Handler()
			u := "/v1/modules/" + c.mod + "/" + c.entry
			for b.Loop() {
				req := httptest.NewRequest("POST", u, bytes.NewReader(c.in))
				req.Header.Set("Content-Type", MediaCBOR)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatal(w.Code, w.Body.String())
				}
			}
		})
		b.Run(c.name+"/http-plain", func(b *testing.B) {
			u := "http://" + rawLn.Addr().String() + "/?m=" + c.mod + "&e=" + c.entry
			for b.Loop() {
				resp, err := client.Post(u, MediaCBOR, bytes.NewReader(c.in))
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatal(resp.Status)
				}
			}
		})
		b.Run(c.name+"/nats-plain", func(b *testing.B) {
			for b.Loop() {
				if _, err := nc.Request("raw."+c.subject, c.in, 5*time.Second); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/nats", func(b *testing.B) {
			for b.Loop() {
				r, err := nc.Request(c.subject, c.in, 5*time.Second)
				if err != nil || r.Header.Get(HeaderError) != "" {
					b.Fatal(err, r.Header)
				}
			}
		})
	}
}

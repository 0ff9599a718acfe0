package dashboard

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fennec-edge/fennec/deploy"
)

//go:embed web/index.html web/app.js web/app.css web/vendor
var webFS embed.FS

// csp is the Content-Security-Policy of every response: scripts, styles
// and connections from the dashboard itself only, no inline script or
// style, no frames, no plugins.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// maxBody bounds a POST body.
const maxBody = 4 << 10

// maxBundle bounds the bundle a promotion re-publishes.
const maxBundle = 64 << 20

type ctxKey struct{}

// session is who made a request.
type session struct {
	Operator  string `json:"operator,omitempty"`
	Role      string `json:"role"`
	CanDeploy bool   `json:"can_deploy"`
	SignIn    bool   `json:"sign_in"` // the dashboard signs operators in
}

func (d *Dashboard) handler() http.Handler {
	mux := http.NewServeMux()
	api := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, d.authed(h)) }
	api("GET /api/v1/session", d.getSession)
	api("GET /api/v1/fleet", d.getFleet)
	api("GET /api/v1/devices/{id}", d.getDevice)
	api("GET /api/v1/rollouts", d.getRollouts)
	api("GET /api/v1/training", d.getTraining)
	api("GET /api/v1/events", d.getEvents)
	api("POST /api/v1/rollouts/{group}/canary", d.postCanary)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	sub, _ := fs.Sub(webFS, "web")
	files := http.FileServerFS(sub)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			apiError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
			return
		}
		if r.URL.Path == "/" || r.URL.Path == "/index.html" {
			w.Header().Set("Cache-Control", "no-cache")
		} else {
			w.Header().Set("Cache-Control", "max-age=3600")
		}
		files.ServeHTTP(w, r)
	})
	return d.guard(mux)
}

// guard sets the security headers and refuses a request whose Host is
// not this dashboard's when it listens on loopback (a DNS-rebinding page
// would name its own host).
func (d *Dashboard) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if d.loopback {
			host := r.Host
			if hh, _, err := net.SplitHostPort(host); err == nil {
				host = hh
			}
			if !loopbackHost(strings.Trim(host, "[]")) {
				apiError(w, http.StatusMisdirectedRequest, fmt.Sprintf("Host %q is not this dashboard's (it listens on loopback)", r.Host))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// authed signs the request's operator in (Authorization: Bearer TOKEN)
// when the dashboard has an access file.
func (d *Dashboard) authed(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session{Role: deploy.RoleRead}
		if d.cfg.Access != nil {
			s.SignIn = true
			auth := r.Header.Get("Authorization")
			tok, ok := strings.CutPrefix(auth, "Bearer ")
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="fennec dashboard"`)
				apiError(w, http.StatusUnauthorized, "sign in: send Authorization: Bearer TOKEN (make one with `fennec hub token`)")
				return
			}
			op, err := verifyToken(d.cfg.Access, Audience(d.cfg.Training.Name), strings.TrimSpace(tok), d.cfg.Now())
			if err != nil {
				d.log.Warn("dashboard: sign-in refused", "remote", r.RemoteAddr, "err", err)
				w.Header().Set("WWW-Authenticate", `Bearer realm="fennec dashboard", error="invalid_token"`)
				apiError(w, http.StatusUnauthorized, errToken.Error())
				return
			}
			s.Operator, s.Role, s.CanDeploy = op.Name, deploy.RoleRead, op.CanDeploy()
			if s.CanDeploy {
				s.Role = deploy.RoleDeploy
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		next(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, s)))
	})
}

func sessionOf(r *http.Request) session { s, _ := r.Context().Value(ctxKey{}).(session); return s }

type errorBody struct {
	Error string `json:"error"`
}

func apiError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if err := enc.Encode(v); err != nil {
		code, buf = http.StatusInternalServerError, *bytes.NewBufferString(`{"error":"encoding"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func (d *Dashboard) getSession(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, sessionOf(r))
}

// queryInt reads an integer parameter within [lo, hi], def when absent.
func queryInt(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("query parameter %s=%q: want an integer in %d..%d", name, v, lo, hi)
	}
	return n, nil
}

func (d *Dashboard) getFleet(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	fq := fleetQuery{q: strings.ToLower(q.Get("q")), group: q.Get("group"), status: q.Get("status")}
	if len(fq.q) > 64 {
		apiError(w, http.StatusBadRequest, "query parameter q: at most 64 bytes")
		return
	}
	if fq.group != "" && !validName(fq.group) {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("query parameter group=%q: want 1-64 characters of A-Z a-z 0-9 _ -", fq.group))
		return
	}
	switch fq.status {
	case "", "online", "offline", "unhealthy":
	default:
		apiError(w, http.StatusBadRequest, fmt.Sprintf("query parameter status=%q: want online, offline or unhealthy", fq.status))
		return
	}
	var err1, err2 error
	fq.limit, err1 = queryInt(r, "limit", 1000, 1, 10000)
	fq.offset, err2 = queryInt(r, "offset", 0, 0, 1<<30)
	if err := errors.Join(err1, err2); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, d.st.fleet(fq))
}

func (d *Dashboard) getDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validName(id) {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("device id %q: want 1-64 characters of A-Z a-z 0-9 _ -", id))
		return
	}
	dv, ok := d.st.device(id)
	if !ok {
		apiError(w, http.StatusNotFound, fmt.Sprintf("no device %q", id))
		return
	}
	writeJSON(w, http.StatusOK, dv)
}

func (d *Dashboard) getRollouts(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, d.st.rollouts())
}

func (d *Dashboard) getTraining(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query().Get("since")
	var since uint64
	if v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			apiError(w, http.StatusBadRequest, fmt.Sprintf("query parameter since=%q: want a round number", v))
			return
		}
		since = n
	}
	writeJSON(w, http.StatusOK, d.st.training(since, v != ""))
}

// getEvents is the live stream (text/event-stream): events hello (on
// connect), round, device and rollout, each with its JSON view.
func (d *Dashboard) getEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		apiError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	c := d.bc.subscribe()
	if c == nil {
		apiError(w, http.StatusServiceUnavailable, fmt.Sprintf("%d live streams are open, the most this dashboard serves", d.cfg.MaxStreams))
		return
	}
	defer d.bc.unsubscribe(c)
	// A stream outlives the server's read and write timeouts.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "retry: 2000\nevent: hello\ndata: {}\n\n")
	fl.Flush()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case msg, ok := <-c:
			if !ok {
				return // fell behind
			}
			if _, err := w.Write(msg); err != nil {
				return
			}
			// Send what is queued with it in one flush.
			for n := len(c); n > 0; n-- {
				if m, ok := <-c; ok {
					if _, err := w.Write(m); err != nil {
						return
					}
				}
			}
			fl.Flush()
		case <-keep.C:
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

// canaryRequest is the body of POST /api/v1/rollouts/{group}/canary.
type canaryRequest struct {
	Canary int `json:"canary"`
}

// postCanary sets a group's rollout to a new canary percentage: the
// operator promotes a canary (or holds it back). It re-publishes the
// group's current bundle with deploy.Publish, as `fennec deploy --canary`
// would, in the signed-in operator's name.
func (d *Dashboard) postCanary(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	if !s.CanDeploy {
		why := "read-only: this dashboard signs no operators in (--access), so no one deploys through it"
		if s.SignIn {
			why = fmt.Sprintf("operator %q has role %q, which does not allow deploys", s.Operator, s.Role)
		}
		apiError(w, http.StatusForbidden, why)
		return
	}
	// A cross-site form cannot send JSON, nor the Authorization header;
	// a browser names a cross-site page in Origin.
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		apiError(w, http.StatusUnsupportedMediaType, "Content-Type: want application/json")
		return
	}
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
		apiError(w, http.StatusForbidden, fmt.Sprintf("Origin %q is not this dashboard", o))
		return
	}
	grp := r.PathValue("group")
	if !validName(grp) {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("group %q: want 1-64 characters of A-Z a-z 0-9 _ -", grp))
		return
	}
	var req canaryRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("body: want {\"canary\": 1..100}: %v", err))
		return
	}
	if req.Canary < 1 || req.Canary > 100 {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("canary %d: want 1..100", req.Canary))
		return
	}
	cur, ok := d.st.desiredOf(grp)
	if !ok {
		apiError(w, http.StatusNotFound, fmt.Sprintf("group %q has no rollout to promote", grp))
		return
	}
	nc := d.cfg.Hub.Conn()
	if nc == nil {
		apiError(w, http.StatusServiceUnavailable, errNoRollouts.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	raw, err := fetchBundle(ctx, nc, cur.Bundle)
	if err != nil {
		apiError(w, http.StatusBadGateway, fmt.Sprintf("group %q: bundle %s: %v", grp, cur.Bundle, err))
		return
	}
	nd, err := deploy.Publish(ctx, nc, raw, grp, req.Canary, s.Operator)
	if err != nil {
		apiError(w, http.StatusBadGateway, fmt.Sprintf("group %q: %v", grp, err))
		return
	}
	d.log.Info("dashboard: canary set", "operator", s.Operator, "group", grp, "from", cur.Canary, "to", req.Canary, "version", nd.Version)
	writeJSON(w, http.StatusOK, nd)
}

func fetchBundle(ctx context.Context, nc *nats.Conn, name string) ([]byte, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	obs, err := js.ObjectStore(ctx, deploy.BucketBundles)
	if err != nil {
		return nil, err
	}
	info, err := obs.GetInfo(ctx, name)
	if err != nil {
		return nil, err
	}
	if info.Size > maxBundle {
		return nil, fmt.Errorf("%d bytes, above the %d a promotion re-publishes", info.Size, maxBundle)
	}
	return obs.GetBytes(ctx, name)
}

package serve

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// httpBinding labels rejections of requests that match no binding.
const httpBinding = "http"

// serveCall handles POST /v1/modules/{module}/{entry}.
func (s *Server) serveCall(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	format := mediaFormat(r.Header.Get("Content-Type"))
	replyFormat := format
	if replyFormat == "" {
		replyFormat = FormatJSON
	}
	fail := func(status int, binding, reason, msg string) {
		s.reject(binding, reason)
		writeError(w, replyFormat, status, reason, msg)
	}
	rest := strings.TrimPrefix(r.URL.Path, "/v1/modules/")
	mod, entry, ok := strings.Cut(rest, "/")
	if !ok || mod == "" || entry == "" || strings.Contains(entry, "/") {
		fail(http.StatusNotFound, httpBinding, RejectNotFound, "want POST /v1/modules/{module}/{entry}")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fail(http.StatusMethodNotAllowed, httpBinding, RejectMethod, r.Method+" is not allowed; use POST")
		return
	}
	b := s.routes[mod+"/"+entry]
	if b == nil {
		msg := fmt.Sprintf("no module %q is served over HTTP on this device", mod)
		if s.modules[mod] {
			msg = fmt.Sprintf("module %q has no entrypoint %q bound to HTTP", mod, entry)
		}
		fail(http.StatusNotFound, httpBinding, RejectNotFound, msg)
		return
	}
	if format == "" {
		fail(http.StatusUnsupportedMediaType, b.Name, RejectContentType,
			fmt.Sprintf("Content-Type %q: want %s or %s", r.Header.Get("Content-Type"), MediaCBOR, MediaJSON))
		return
	}
	// Shed before reading the body: under overload, reading and decoding
	// requests that will be refused anyway takes the CPU from the calls
	// that were accepted (BENCHMARKS.md, "Device serving", 2026-12-04).
	// The admission slot is held from here; every return before the call
	// gives it back.
	if shed := b.lim.tryAdmit(); shed != "" {
		s.shed(b, shed)
		w.Header().Set("Retry-After", "1")
		s.skipBody(w, r)
		writeError(w, format, http.StatusTooManyRequests, shed, fmt.Sprintf("binding %s is at capacity (%d running, %d queued): %s", b.Name, b.Concurrency, b.Queue, shed))
		return
	}
	admitted := true
	defer func() {
		if admitted {
			b.lim.leave()
		}
	}()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.dev.HTTP.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			fail(http.StatusRequestEntityTooLarge, b.Name, RejectTooLarge, fmt.Sprintf("the body is larger than %d bytes", mbe.Limit))
			return
		}
		fail(http.StatusBadRequest, b.Name, RejectMalformed, "reading the body: "+err.Error())
		return
	}
	in, err := DecodeRequest(format, body)
	if err != nil {
		fail(http.StatusBadRequest, b.Name, RejectMalformed, err.Error())
		return
	}
	if ok, why := b.mod.Ready(); !ok {
		s.shed(b, ShedUnavailable)
		writeError(w, format, http.StatusServiceUnavailable, OutcomeUnavailable, fmt.Sprintf("module %s is not ready: %s", b.Module, why))
		return
	}
	admitted = false // callAdmitted owns the slot now
	out, shed, err := s.callAdmitted(r.Context(), b, in, arrived)
	if shed != "" {
		status := http.StatusTooManyRequests
		if shed == ShedShutdown {
			status = http.StatusServiceUnavailable
		}
		w.Header().Set("Retry-After", "1")
		writeError(w, format, status, shed, fmt.Sprintf("binding %s is at capacity (%d running, %d queued): %s", b.Name, b.Concurrency, b.Queue, shed))
		return
	}
	if err != nil {
		oc := outcome(err)
		writeError(w, format, statusOf(oc), oc, err.Error())
		return
	}
	resp, err := EncodeResponse(format, out)
	if err != nil {
		writeError(w, format, http.StatusInternalServerError, OutcomeError, err.Error())
		return
	}
	w.Header().Set("Content-Type", mediaOf(format))
	w.Write(resp)
}

// Bodies a refused request may skip to keep its connection (shedDrainBytes
// at most, arriving within shedDrainWait).
const (
	shedDrainBytes = 64 << 10
	shedDrainWait  = 20 * time.Millisecond
)

// skipBody readies a request refused before its body was read for the
// answer: a small body that has arrived (or arrives within shedDrainWait)
// is read and dropped, so that the connection stays open for the client's
// next request; anything else closes the connection after the answer (net/http
// would otherwise read up to 256 KiB first). Under overload a shed client's
// reconnection, an accept and a handshake per 429, costs more than its
// few kilobytes (BENCHMARKS.md, "Device serving", 2026-12-04 vegeta run).
func (s *Server) skipBody(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength >= 0 && r.ContentLength <= shedDrainBytes {
		rc := http.NewResponseController(w)
		if rc.SetReadDeadline(time.Now().Add(shedDrainWait)) == nil {
			n, err := io.Copy(io.Discard, io.LimitReader(r.Body, shedDrainBytes+1))
			if err == nil && n == r.ContentLength {
				return // the next request's read sets its own deadline
			}
		}
	}
	w.Header().Set("Connection", "close")
}

func statusOf(outcome string) int {
	switch outcome {
	case OutcomeGuestError:
		return http.StatusUnprocessableEntity
	case OutcomeDeadline:
		return http.StatusGatewayTimeout
	case OutcomeUnavailable:
		return http.StatusServiceUnavailable
	case OutcomeNoEntry:
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

func mediaOf(format string) string {
	if format == FormatJSON {
		return MediaJSON
	}
	return MediaCBOR
}

func writeError(w http.ResponseWriter, format string, status int, reason, msg string) {
	w.Header().Set("Content-Type", mediaOf(format))
	w.WriteHeader(status)
	w.Write(encodeError(format, reason, msg))
}

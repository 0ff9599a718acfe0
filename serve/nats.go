package serve

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Headers of an error reply to a NATS request, as NATS services (nats.go
// micro) write them.
const (
	HeaderError     = "Nats-Service-Error"
	HeaderErrorCode = "Nats-Service-Error-Code"
)

// onMsg runs on the subscription's delivery goroutine: it admits the
// message or sheds it at once, and hands an admitted one to a goroutine of
// the server's group, so that at most Concurrency+Queue messages of a
// binding are held beyond the client's (bounded) pending buffer.
func (s *Server) onMsg(b *binding, msg *nats.Msg) {
	if s.stopping.Load() {
		s.shed(b, ShedShutdown)
		s.replyError(msg, b.Format, 503, ShedShutdown, "the device is shutting down")
		return
	}
	if shed := b.lim.tryAdmit(); shed != "" {
		s.shed(b, shed)
		s.replyError(msg, b.Format, 429, shed, fmt.Sprintf("binding %s is at capacity (%d running, %d queued): %s", b.Name, b.Concurrency, b.Queue, shed))
		return
	}
	arrived := time.Now()
	if !s.routines.Go(func() { s.handleMsg(b, msg, arrived) }) {
		b.lim.leave()
		s.shed(b, ShedShutdown)
	}
}

func (s *Server) handleMsg(b *binding, msg *nats.Msg, arrived time.Time) {
	in, err := DecodeRequest(b.Format, msg.Data)
	if err != nil {
		b.lim.leave()
		s.reject(b.Name, RejectMalformed)
		s.log.Warn("bad message", "binding", b.Name, "subject", msg.Subject, "err", err)
		s.replyError(msg, b.Format, 400, RejectMalformed, err.Error())
		return
	}
	ctx := context.Background()
	if shed := b.lim.waitAdmitted(ctx, true); shed != "" {
		s.shed(b, shed)
		s.replyError(msg, b.Format, 429, shed, fmt.Sprintf("binding %s is at capacity: %s", b.Name, shed))
		return
	}
	s.m.admission.WithLabelValues(b.Name).Observe(time.Since(arrived).Seconds())
	out, err := s.runAdmitted(ctx, b, msg.Subject, in)
	if err != nil {
		oc := outcome(err)
		s.replyError(msg, b.Format, statusOf(oc), oc, err.Error())
		return
	}
	resp, err := EncodeResponse(b.Format, out)
	if err != nil {
		s.replyError(msg, b.Format, 500, OutcomeError, err.Error())
		return
	}
	if msg.Reply != "" {
		if err := msg.Respond(resp); err == nil {
			s.m.published.WithLabelValues(b.Name).Inc()
		}
	}
	if b.Publish != "" && len(out) > 0 {
		subj := expand(b.Publish, s.dev.Device, msg.Subject)
		if err := s.cfg.Conn.Publish(subj, resp); err != nil {
			s.log.Warn("publish failed", "binding", b.Name, "subject", subj, "err", err)
		} else {
			s.m.published.WithLabelValues(b.Name).Inc()
		}
	}
}

func (s *Server) replyError(msg *nats.Msg, format string, code int, reason, text string) {
	if msg.Reply == "" {
		return
	}
	r := nats.NewMsg(msg.Reply)
	r.Header.Set(HeaderError, reason+": "+text)
	r.Header.Set(HeaderErrorCode, strconv.Itoa(code))
	r.Data = encodeError(format, reason, text)
	msg.RespondMsg(r)
}

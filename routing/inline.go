package routing

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/portico-gateway/portico/connections"
	"github.com/portico-gateway/portico/routing/auth"
)

// The hot path of a message on a mock route that answers from the
// message body alone (the echo of `response: {body: $request.body.data}`):
// nothing on it reads the event, the request or message id or the time,
// so none of them is made. The body is checked as JSON once, for route
// selection and the template together, and the answer is built in a
// pooled buffer that Send copies: no allocation per message.

// maxPooledAnswer bounds the buffers kept in answerBufs: a rare large
// answer is not kept for every later one.
const maxPooledAnswer = 16 << 10

var answerBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, 512)
	return &b
}}

// selectRoute is the custom route the selection expression picks for a
// message that is valid JSON; nil when none matches.
func (r *Router) selectRoute(st *stage, data []byte) *route {
	var kb [64]byte // route keys are short: no allocation
	key := st.tbl.selection.AppendEvalChecked(kb[:0], data, true, nil)
	return st.custom[string(key)]
}

// debugOn reports whether debug lines are logged; the inline path then
// steps aside for the full one, which logs every integration call.
func (r *Router) debugOn() bool {
	return r.log.Enabled(context.Background(), slog.LevelDebug)
}

// answerInline answers one message on an inline route (route.inline)
// and, when timed, returns the time the mock took (the access log's
// integrationLatency). Untimed, the mock's latency is recorded as 0: it
// is well under a microsecond, inside the histogram's first bucket, and
// its two clock reads were 2% of an echo's CPU. valid is
// gjson.ValidBytes(data).
func (r *Router) answerInline(c connections.Conn, rt *route, data []byte, valid, timed bool) time.Duration {
	if !rt.twoWay {
		rt.integ.ObserveMock(0) // the mock's answer goes nowhere: nothing to build
		return 0
	}
	var start time.Time
	if timed {
		start = time.Now()
	}
	bp := answerBufs.Get().(*[]byte)
	out := rt.integ.AppendMockBody((*bp)[:0], data, valid)
	var d time.Duration
	if timed {
		d = time.Since(start)
	}
	rt.integ.ObserveMock(d)
	if len(out) > 0 {
		if err := c.Send(out, false); err == nil {
			rt.out.Inc()
		} else if r.debugOn() {
			r.log.Debug("route response not delivered", "route", rt.key, "connectionId", c.Info().ID, "err", err)
		}
	}
	if cap(out) <= maxPooledAnswer {
		*bp = out[:0]
		answerBufs.Put(bp)
	}
	return d
}

// connectInline answers $connect on an inline mock route (route.inline,
// no authorizer): what the full path answers, without the CONNECT event,
// its headers and query maps, or a request id. res accepts the
// connection.
func (r *Router) connectInline(st *stage, rt *route, res *connections.ConnectResult) *connections.ConnectResult {
	if status := rt.integ.MockStatus(); status < 200 || status > 299 {
		st.connRejected.Inc()
		return &connections.ConnectResult{Status: status, Body: string(rt.integ.AppendMockBody(nil, nil, false))}
	}
	res.Header = http.Header{} // what the full path answers: a mock's (no) headers
	st.connAccepted.Inc()
	st.connsOpen.Inc()
	return res
}

// connectInlineAuthorized is connectInline behind an authorizer that
// reads nothing but the request (auth.RequestOnly: a JWT authorizer, a
// Lambda authorizer without $context sources): what the full path
// answers — the authorizer's refusal, throttling and API keys after it,
// its subprotocol — without the CONNECT event, which is built only when
// the authorizer asks for it (a REQUEST authorizer's cache miss sends
// it). requestID is that event's request id ("": a new one).
func (r *Router) connectInlineAuthorized(ctx context.Context, req *connections.ConnectRequest, s *session, st *stage, rt *route, res *connections.ConnectResult, requestID string) *connections.ConnectResult {
	ar := r.authRequest(req, st, nil)
	ar.Complete = func(ar *auth.Request) { fromEvent(ar, connectEvent(req, s, st, requestID)) }
	if refused := r.authorizeRequest(ctx, ar, s, st); refused != nil {
		return refused
	}
	if refused := r.admit(st, s, req.Request, s.x.auth.UsageIdentifierKey); refused != nil {
		return refused
	}
	out := r.connectInline(st, rt, res)
	if p := s.x.auth.Subprotocol; p != "" && out == res {
		res.Header.Set("Sec-Websocket-Protocol", p)
	}
	return out
}

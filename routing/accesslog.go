package routing

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/portico-gateway/portico/accesslog"
	"github.com/portico-gateway/portico/connections"
)

// accessLine is what one access log line of a WebSocket event says
// beyond its connection's facts.
type accessLine struct {
	key, eventType, requestID, messageID string
	start                                time.Time
	status                               int
	errMsg                               string
	integ                                time.Duration // negative: no integration ran
	// DISCONNECT only.
	closeCode   int
	closeReason string
}

// access writes the line of one event of s, if its stage keeps an access
// log. Callers check st.access first, so a stage without one pays for a
// nil check only.
func (r *Router) access(s *session, st *stage, a *accessLine) {
	if st.access == nil {
		return
	}
	e := accesslog.Entry{
		RequestID: a.requestID, ExtendedRequestID: a.requestID, APIID: st.apiID, Stage: st.name,
		RouteKey: a.key, EventType: a.eventType, ConnectionID: s.connectionID, MessageID: a.messageID,
		SourceIP: s.identity.sourceIP, UserAgent: s.identity.userAgent, DomainName: s.domainName,
		ErrorMessage: a.errMsg, RequestTime: a.start, Status: a.status, IntegrationLatency: a.integ,
		ResponseLatency: time.Since(a.start), ResponseLength: -1,
		DisconnectStatusCode: a.closeCode, DisconnectReason: a.closeReason,
	}
	if id := s.AuthIdentity(); id != nil {
		e.PrincipalID = id.PrincipalID
	}
	st.access.Log(&e)
}

// accessInline writes the MESSAGE line of a message answered inline
// (answerInline took integ), received at start. The line is all such a
// message needs its request and message ids for: they are made here, on
// the stack, and no event is built.
func (r *Router) accessInline(s *session, st *stage, rt *route, start time.Time, integ time.Duration) {
	var ids [2 * connections.IDLen]byte
	b := connections.AppendEventID(connections.AppendEventID(ids[:0]))
	r.access(s, st, &accessLine{key: rt.key, eventType: EventMessage, requestID: string(b[:connections.IDLen]),
		messageID: string(b[connections.IDLen:]), start: start, status: rt.integ.MockStatus(), integ: integ})
}

// accessConn is access for the session of c (none: nothing is logged),
// on stage st.
func (r *Router) accessConn(c connections.Conn, st *stage, a *accessLine) {
	if s, _ := c.State().(*session); s != nil {
		r.access(s, st, a)
	}
}

// statusOf is the HTTP status an error frame's message stands for.
func statusOf(message string) int {
	switch message {
	case msgForbidden:
		return http.StatusForbidden
	case msgThrottled, msgQuota:
		return http.StatusTooManyRequests
	case msgTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// accessConnect is connect; with an access log on the stage it writes
// the CONNECT line, accepted or refused.
func (r *Router) accessConnect(ctx context.Context, req *connections.ConnectRequest) *connections.ConnectResult {
	t := r.tbl.Load()
	st := t.stages[strings.Trim(req.Request.URL.Path, "/")]
	if st == nil || st.access == nil {
		return r.connect(ctx, req, "")
	}
	start := time.Now()
	requestID := connections.NewID()
	res := r.connect(ctx, req, requestID)
	a := &accessLine{key: RouteConnect, eventType: EventConnect, requestID: requestID, start: start,
		status: http.StatusOK, integ: -1}
	if !res.Accepted() {
		a.status = res.Status
		a.errMsg = gjson.Get(res.Body, "message").String()
		if a.errMsg == "" {
			a.errMsg = http.StatusText(res.Status)
		}
	}
	s, _ := res.State.(*session)
	if s == nil { // refused before a session: the handshake's own facts
		info := req.Info
		s = &session{connectionID: info.ID, domainName: t.domain,
			identity: connIdentity{sourceIP: info.SourceIP, userAgent: info.UserAgent}}
	}
	r.access(s, st, a)
	return res
}

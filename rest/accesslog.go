package rest

import (
	"time"

	"github.com/tidwall/gjson"

	"github.com/portico-gateway/portico/accesslog"
)

// access writes the access log line of one request of a stage that
// keeps one (x.st and x.rt are set).
func (h *table) access(sw *statusWriter, x *exchange) {
	r := x.r
	end := sw.headersAt
	if end.IsZero() {
		end = time.Now()
	}
	e := accesslog.Entry{
		RequestID: x.id, ExtendedRequestID: x.extID, APIID: h.api.ID, Stage: x.st.name, RouteKey: x.rt.key,
		SourceIP: x.sourceIP, UserAgent: r.UserAgent(), DomainName: x.domain, HTTPMethod: r.Method,
		Path: r.URL.Path, Protocol: r.Proto, ResourcePath: x.rt.path, RequestTime: x.now, Status: sw.status,
		IntegrationLatency: x.integ, ResponseLatency: end.Sub(x.now), ResponseLength: -1,
	}
	if e.ExtendedRequestID == "" {
		e.ExtendedRequestID = x.id // HTTP APIs have one id
	}
	if e.SourceIP == "" {
		e.SourceIP = sourceIP(r)
	}
	if e.DomainName == "" {
		e.DomainName = r.Host
	}
	if x.identity != nil {
		e.PrincipalID = x.identity.PrincipalID
	}
	if sw.errBody != "" {
		e.ErrorMessage = gjson.Get(sw.errBody, "message").String()
	}
	x.st.access.Log(&e)
}

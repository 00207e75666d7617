package integration

import "time"

// BodyMock reports whether the route is a mock whose answer reads
// nothing but the message body ($request.body...; stage variables are
// substituted when it is built): its caller may then answer a message
// without building the event, ids or times, with AppendMockBody.
func (r *Route) BodyMock() bool {
	m, ok := r.integ.(*mockIntegration)
	return ok && (m.body == nil || m.body.BodyOnly())
}

// AppendMockBody appends the answer body of a route BodyMock reports
// true of to dst: what Invoke's Response.Body would hold, without
// allocating when dst has room. valid is gjson.ValidBytes(body), which
// the caller already knows. It records nothing: the caller reports the
// time it took with ObserveMock (a mock cannot fail).
func (r *Route) AppendMockBody(dst, body []byte, valid bool) []byte {
	m := r.integ.(*mockIntegration)
	if m.body == nil {
		return dst
	}
	return m.body.AppendEvalChecked(dst, body, valid, nil)
}

// MockStatus is the status code a mock route answers with (200 unless
// configured); 0 for a route that is not a mock.
func (r *Route) MockStatus() int {
	m, ok := r.integ.(*mockIntegration)
	if !ok {
		return 0
	}
	return m.status
}

// ObserveMock records one answer of the mock built by AppendMockBody, as
// Invoke records every call: the route's integration latency, and the
// mock's status when it is of class 4xx or 5xx (AWS's IntegrationError).
func (r *Route) ObserveMock(d time.Duration) {
	r.latency.Observe(d.Seconds())
	switch m := r.integ.(*mockIntegration); {
	case m.status >= 500:
		r.status5.Inc()
	case m.status >= 400:
		r.status4.Inc()
	}
}

package rest

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"
)

// benchExchange is a typical request: a few headers, a query, a path
// parameter and a small JSON body.
func benchExchange(testing.TB) *exchange {
	r := httptest.NewRequest("POST", "http://api.example.com/prod/pets/7?a=1&b=2", nil)
	for k, v := range map[string]string{"Accept": "application/json", "Content-Type": "application/json",
		"User-Agent": "bench/1.0", "Authorization": "Bearer abc.def.ghi", "Cookie": "sid=abc; theme=dark"} {
		r.Header.Set(k, v)
	}
	h := &table{api: &API{Name: "pets", ID: "q1w2e3r4t5", Protocol: ProtocolHTTP, AccountID: "123456789012"}}
	return &exchange{h: h, r: r, now: time.Now(), id: newID(), sourceIP: "203.0.113.9", domain: "api.example.com",
		st: &stage{name: "prod", vars: map[string]string{"env": "prod"}}, rt: &route{key: "POST /pets/{id}", path: "/pets/{id}"},
		params: map[string]string{"id": "7"}, path: "/pets/7", body: []byte(`{"name":"rex","kind":"dog"}`)}
}

// BenchmarkEventV2 measures building and encoding a payload 2.0 event,
// the work an http integration does per request before the call.
func BenchmarkEventV2(b *testing.B) {
	x := benchExchange(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(x.eventV2()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEventV2Appender is the same with the hand-written encoder
// the http integration uses.
func BenchmarkEventV2Appender(b *testing.B) {
	x := benchExchange(b)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = v2Event{x}.AppendJSON(buf[:0])
	}
}

// BenchmarkEventV1 is the same for the REST proxy event.
func BenchmarkEventV1(b *testing.B) {
	x := benchExchange(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(x.eventV1()); err != nil {
			b.Fatal(err)
		}
	}
}

package accesslog

import (
	"io"
	"testing"
	"time"
)

// benchFormat is the routing benchmarks' JSON line.
const benchFormat = `{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","requestTime":"$context.requestTime",` +
	`"routeKey":"$context.routeKey","status":"$context.status","connectionId":"$context.connectionId",` +
	`"integrationLatency":"$context.integrationLatency"}`

func benchEntry() *Entry {
	return &Entry{RequestID: "Jx0cTkh2oAMEb3Q=", ExtendedRequestID: "Jx0cTkh2oAMEb3Q=", APIID: "abc123", Stage: "prod",
		RouteKey: "echo", EventType: "MESSAGE", ConnectionID: "Jx0cTaZ1IAMCJ8g=", MessageID: "Jx0cTnR9oAMEb4A=",
		SourceIP: "127.0.0.1", UserAgent: "Go-http-client/1.1", RequestTime: time.Now(), Status: 200,
		IntegrationLatency: 0, ResponseLatency: time.Millisecond, ResponseLength: -1}
}

// BenchmarkTemplateAppend formats one line of benchFormat.
func BenchmarkTemplateAppend(b *testing.B) {
	tpl, err := Compile(benchFormat)
	if err != nil {
		b.Fatal(err)
	}
	e := benchEntry()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = tpl.Append(buf[:0], e)
	}
}

// BenchmarkWriterLog is Writer.Log from several goroutines at once (as
// the connection servers' shards log), to a destination that discards
// the lines: formatting, the hand-off to the writer's goroutine and its
// writes.
func BenchmarkWriterLog(b *testing.B) {
	tpl, err := Compile(benchFormat)
	if err != nil {
		b.Fatal(err)
	}
	w, err := Open(Options{Destination: "discard", Out: io.Discard, Buffer: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	b.ReportAllocs()
	b.SetParallelism(2)
	b.RunParallel(func(pb *testing.PB) {
		e := benchEntry()
		for pb.Next() {
			w.Log(tpl, e)
		}
	})
}

package loadtest

import (
	"io"
	"net/http"
	"sync/atomic"
)

// OTLPSink stands in for an OpenTelemetry collector in the observability
// benchmark: it accepts OTLP/HTTP exports (POST /v1/traces), discards
// them and answers 200 with an empty protobuf body, which the exporter
// reads as a full success. Exports and Bytes count what it received.
type OTLPSink struct {
	exports, bytes atomic.Int64
}

func (s *OTLPSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.Error(w, "OTLP sink: only POST /v1/traces", http.StatusNotFound)
		return
	}
	n, _ := io.Copy(io.Discard, r.Body)
	s.exports.Add(1)
	s.bytes.Add(n)
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

// Exports is the number of export requests received.
func (s *OTLPSink) Exports() int64 { return s.exports.Load() }

// Bytes is the number of request body bytes received.
func (s *OTLPSink) Bytes() int64 { return s.bytes.Load() }

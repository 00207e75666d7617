package config

import (
	"strings"

	"github.com/portico-gateway/portico/accesslog"
)

// AccessLogSettings are a stage's access logs, as AWS's
// accessLogSettings: a line per WebSocket event (CONNECT, MESSAGE,
// DISCONNECT) or per HTTP/REST request.
type AccessLogSettings struct {
	// Format is the line: $context variables ($context.requestId,
	// $context.status, ...) in a JSON object or in plain text (CLF). It
	// must name $context.requestId or $context.extendedRequestId.
	// Required.
	Format string `yaml:"format"`
	// Destination is a file path (appended to; created with mode 0640) or
	// "stdout". Stages naming the same destination share one writer.
	// Required.
	Destination string `yaml:"destination"`
}

// accessLog checks a stage's accessLogSettings (key is their path).
func (v *validator) accessLog(key string, s *AccessLogSettings) {
	if s == nil {
		return
	}
	if _, err := accesslog.Compile(s.Format); err != nil {
		v.add(key+".format", "%s", strings.TrimPrefix(err.Error(), "accesslog: bad format: "))
	}
	if strings.TrimSpace(s.Destination) == "" {
		v.add(key+".destination", "a file path or %q is required", accesslog.Stdout)
	}
}

package config

import (
	"strings"
	"testing"
)

func TestAccessLogSettings(t *testing.T) {
	base := `apis:
  - name: chat
    stages:
      - name: prod
        accessLogSettings:
          format: FORMAT
          destination: DEST
    routes:
      $default: {integration: {type: mock}}
`
	yml := func(format, dest string) string {
		return strings.NewReplacer("FORMAT", format, "DEST", dest).Replace(base)
	}
	f, err := Parse("ok.yaml", []byte(yml(`'{"requestId":"$context.requestId","status":"$context.status"}'`, "stdout")))
	if err != nil {
		t.Fatal(err)
	}
	if s := f.APIs[0].Stages[0].AccessLogSettings; s == nil || s.Destination != "stdout" || !strings.Contains(s.Format, "$context.status") {
		t.Errorf("accessLogSettings = %+v", s)
	}
	for _, c := range []struct{ format, dest, want string }{
		{`"$context.status"`, "stdout", `bad.yaml:6: apis[0].stages[0].accessLogSettings.format: it must contain $context.requestId or $context.extendedRequestId`},
		{`"$context.requestId $context.statuss"`, "stdout", `bad.yaml:6: apis[0].stages[0].accessLogSettings.format: unknown variable $context.statuss`},
		{`""`, "stdout", `bad.yaml:6: apis[0].stages[0].accessLogSettings.format: empty`},
		{`"$context.requestId"`, `""`, `bad.yaml:7: apis[0].stages[0].accessLogSettings.destination: a file path or "stdout" is required`},
	} {
		_, err := Parse("bad.yaml", []byte(yml(c.format, c.dest)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("format %s, destination %s: %v, want %s", c.format, c.dest, err, c.want)
		}
	}
}

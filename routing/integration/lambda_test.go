package integration

import (
	"errors"
	"strings"
	"testing"
)

func TestParseLambdaResult(t *testing.T) {
	for _, c := range []struct {
		version, in string
		status      int
		body        string
		cookies     string
		ok          bool
	}{
		{Payload2, `{"statusCode":201,"body":"x","cookies":["a=1","b=2"]}`, 201, "x", "a=1|b=2", true},
		{Payload2, `{"hello":"world"}`, 200, `{"hello":"world"}`, "", true},
		{Payload2, `"hi"`, 200, "hi", "", true},
		{Payload2, `[1,2]`, 200, `[1,2]`, "", true},
		{Payload2, `<html>`, 0, "", "", false},
		{Payload2, ``, 0, "", "", false},
		{Payload2, `{"statusCode":200,"cookies":"a=1"}`, 0, "", "", false},
		{Payload1, `{"statusCode":200,"body":"v1"}`, 200, "v1", "", true},
		{Payload1, `{"hello":"world"}`, 0, "", "", false},
		{Payload1, `{"statusCode":"abc"}`, 0, "", "", false},
		{Payload1, `{"statusCode":200,"headers":[1]}`, 0, "", "", false},
	} {
		r, err := parseLambdaResult([]byte(c.in), c.version)
		if !c.ok {
			if err == nil || !errors.Is(err, ErrIntegration) {
				t.Errorf("%s %s: %v, want ErrIntegration", c.version, c.in, err)
			}
			continue
		}
		if err != nil || r.StatusCode != c.status || r.Body != c.body || strings.Join(r.Cookies, "|") != c.cookies {
			t.Errorf("%s %s: %+v %v", c.version, c.in, r, err)
		}
	}
}

func FuzzLambdaResult(f *testing.F) {
	for _, s := range []string{`{"statusCode":200,"body":"x","cookies":["a"]}`, `"s"`, `{"a":1}`, `{"statusCode":1e3}`, `{"headers":null,"statusCode":200}`} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, b []byte, v2 bool) {
		version := Payload1
		if v2 {
			version = Payload2
		}
		r, err := parseLambdaResult(b, version)
		if err != nil {
			if !errors.Is(err, ErrIntegration) {
				t.Fatalf("error %v is not ErrIntegration", err)
			}
			return
		}
		if r.StatusCode < 100 || r.StatusCode > 599 || r.Headers == nil {
			t.Fatalf("result %+v", r)
		}
		for k := range r.Headers {
			if k == "" {
				t.Fatalf("empty header name from %q", b)
			}
		}
	})
}

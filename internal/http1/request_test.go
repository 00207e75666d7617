package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const post = "POST /dev/@connections/abc%3D HTTP/1.1\r\nHost: 127.0.0.1:9090\r\nContent-Length: 5\r\nX-Amz-Date: 20261203T000000Z\r\n\r\nhello"
	for _, tc := range []struct {
		name, in string
		n        int // bytes taken; 0 with err
		err      error
		path     string
		body     string
		close    bool
	}{
		{name: "post", in: post, n: len(post), path: "/dev/@connections/abc=", body: "hello"},
		{name: "two pipelined", in: post + post, n: len(post), path: "/dev/@connections/abc=", body: "hello"},
		{name: "no body", in: "GET / HTTP/1.1\r\nHost: h\r\n\r\n", n: 27, path: "/"},
		{name: "close", in: "POST /a HTTP/1.1\r\nhost: h\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n", n: 67, path: "/a", close: true},
		{name: "head cut", in: post[:30], err: ErrIncomplete},
		{name: "body cut", in: post[:len(post)-1], err: ErrIncomplete},
		{name: "empty", in: "", err: ErrIncomplete},
		{name: "HTTP/1.0", in: "GET / HTTP/1.0\r\nHost: h\r\n\r\n", err: ErrUnsupported},
		{name: "query", in: "GET /?a=1 HTTP/1.1\r\nHost: h\r\n\r\n", err: ErrUnsupported},
		{name: "bad escape", in: "GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n", err: ErrUnsupported},
		{name: "no host", in: "GET / HTTP/1.1\r\n\r\n", err: ErrUnsupported},
		{name: "two hosts", in: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", err: ErrUnsupported},
		{name: "chunked", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", err: ErrUnsupported},
		{name: "expect", in: "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", err: ErrUnsupported},
		{name: "two lengths", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", err: ErrUnsupported},
		{name: "signed length", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\nx", err: ErrUnsupported},
		{name: "over max body", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1025\r\n\r\n", err: ErrUnsupported},
		{name: "bare LF", in: "GET / HTTP/1.1\nHost: h\n\n", err: ErrIncomplete},
		{name: "bare LF in head", in: "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", err: ErrUnsupported},
		{name: "folded", in: "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", err: ErrUnsupported},
		{name: "space before colon", in: "GET / HTTP/1.1\r\nHost : h\r\n\r\n", err: ErrUnsupported},
		{name: "lower method", in: "get / HTTP/1.1\r\nHost: h\r\n\r\n", err: ErrUnsupported},
		{name: "absolute target", in: "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", err: ErrUnsupported},
		{name: "upgrade", in: "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n", err: ErrUnsupported},
		{name: "connection upgrade", in: "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n\r\n", err: ErrUnsupported},
		{name: "head too long", in: "GET / HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("a", MaxHead) + "\r\n\r\n", err: ErrUnsupported},
		{name: "head too long, cut", in: "GET / HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("a", MaxHead), err: ErrUnsupported},
		{name: "too many fields", in: "GET / HTTP/1.1\r\nHost: h\r\n" + strings.Repeat("X: y\r\n", MaxFields) + "\r\n", err: ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			n, err := Parse([]byte(tc.in), 1024, &r)
			if !errors.Is(err, tc.err) || n != tc.n {
				t.Fatalf("Parse = %d, %v; want %d, %v", n, err, tc.n, tc.err)
			}
			if err != nil {
				return
			}
			if string(r.Path) != tc.path || string(r.Body) != tc.body || r.Close != tc.close {
				t.Fatalf("path %q body %q close %v; want %q %q %v", r.Path, r.Body, r.Close, tc.path, tc.body, tc.close)
			}
		})
	}
}

func TestRequestHeader(t *testing.T) {
	var r Request
	in := "POST /a HTTP/1.1\r\nHost: h\r\nx-amz-date:  20261203T000000Z \r\nAuthorization: AWS4 x\r\nContent-Length: 0\r\n\r\n"
	if _, err := Parse([]byte(in), 10, &r); err != nil {
		t.Fatal(err)
	}
	if v := r.Header("x-amz-date"); string(v) != "20261203T000000Z" {
		t.Errorf("x-amz-date = %q (spaces around a value are not part of it)", v)
	}
	if v := r.Header("authorization"); string(v) != "AWS4 x" {
		t.Errorf("authorization = %q", v)
	}
	if v := r.Header("missing"); v != nil {
		t.Errorf("missing = %q, want nil", v)
	}
}

// FuzzParse holds Parse to net/http: whatever Parse takes, http.ReadRequest
// (with the server's one-Host rule) reads the same way: the same method,
// path, fields, body and close, and the same count of bytes.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"POST /dev/@connections/abc%3D HTTP/1.1\r\nHost: 127.0.0.1:9090\r\nContent-Length: 5\r\n\r\nhello",
		"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabcPOST /b HTTP/1.1\r\n",
		"PUT /%41%2f HTTP/1.1\r\nHost: [::1]:80\r\nX:\t\r\nContent-Length: 007\r\n\r\n1234567",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var r Request
		n, err := Parse(in, 1<<10, &r)
		if err != nil {
			if !errors.Is(err, ErrIncomplete) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("Parse: %v", err)
			}
			if errors.Is(err, ErrIncomplete) && len(in) >= MaxHead+1<<10 {
				t.Fatalf("incomplete after %d bytes", len(in))
			}
			return
		}
		br := bufio.NewReader(bytes.NewReader(in))
		req, rerr := http.ReadRequest(br)
		if rerr != nil {
			t.Fatalf("Parse took %q, net/http refuses it: %v", in[:n], rerr)
		}
		body, berr := io.ReadAll(req.Body)
		if berr != nil {
			t.Fatalf("net/http's body: %v", berr)
		}
		if taken := len(in) - br.Buffered(); taken != n {
			t.Fatalf("Parse took %d bytes, net/http %d", n, taken)
		}
		if len(req.Header["Host"]) != 0 || req.Host == "" {
			t.Fatalf("net/http's Host: %q %q", req.Host, req.Header["Host"])
		}
		if req.Method != string(r.Method) || req.URL.Path != string(r.Path) || string(body) != string(r.Body) || req.Close != r.Close {
			t.Fatalf("Parse: %s %q body %q close %v; net/http: %s %q body %q close %v",
				r.Method, r.Path, r.Body, r.Close, req.Method, req.URL.Path, body, req.Close)
		}
		for _, fl := range r.Fields {
			name := http.CanonicalHeaderKey(string(fl.Name))
			if name == "Host" {
				if req.Host != string(fl.Value) {
					t.Fatalf("Host %q; net/http %q", fl.Value, req.Host)
				}
				continue
			}
			if got := req.Header.Get(name); got != string(r.Header(strings.ToLower(name))) {
				t.Fatalf("%s: %q; net/http %q", name, r.Header(strings.ToLower(name)), got)
			}
		}
	})
}

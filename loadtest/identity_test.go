package loadtest

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTokens(t *testing.T) {
	toks, err := ParseTokens(strings.NewReader("a.b.c\r\n\n  d-1 \ne_2"))
	if err != nil || strings.Join(toks, ",") != "a.b.c,d-1,e_2" {
		t.Errorf("got %q, %v", toks, err)
	}
	if _, err := ParseTokens(strings.NewReader("\n \n")); !errors.Is(err, ErrNoToken) {
		t.Errorf("blank file: %v", err)
	}
	for _, bad := range []string{"a b\n", "tok\x00\n", "caf\xc3\xa9\n", strings.Repeat("x", MaxTokenBytes+1)} {
		if toks, err := ParseTokens(strings.NewReader(bad)); err == nil {
			t.Errorf("%.20q accepted: %q", bad, toks)
		}
	}
}

func TestParseHeader(t *testing.T) {
	name, value, err := ParseHeader(" Authorization :  Bearer {token} ")
	if err != nil || name != "Authorization" || value != "Bearer {token}" {
		t.Errorf("got %q %q %v", name, value, err)
	}
	for _, bad := range []string{"", ":x", "No Colon", "Bad Name: x", "X: a\nY: b", "X\r: y"} {
		if _, _, err := ParseHeader(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzParseHeader: whatever --header is given, an accepted one writes
// exactly one header line into the handshake.
func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{"Authorization: Bearer {token}", "X-A:b", ":", "a:\r\nb", "Sec-WebSocket-Protocol: chat, {token}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, value, err := ParseHeader(s)
		if err != nil {
			return
		}
		line := name + ": " + value
		if name == "" || strings.ContainsAny(line, "\r\n") || strings.ContainsAny(name, " \t:") {
			t.Fatalf("%q gave the header %q", s, line)
		}
	})
}

// FuzzParseTokens: every token read is non-empty, bounded, printable
// ASCII without spaces, so that it cannot split a handshake line.
func FuzzParseTokens(f *testing.F) {
	for _, s := range []string{"a.b.c\n", "x\r\ny\n\n", " \t\n", "a b", "\x00", "eyJhbGciOiJSUzI1NiJ9.e30.sig"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		toks, err := ParseTokens(strings.NewReader(s))
		if err != nil {
			if len(toks) != 0 {
				t.Fatalf("error %v with tokens %q", err, toks)
			}
			return
		}
		if len(toks) == 0 {
			t.Fatal("no error and no token")
		}
		for _, tok := range toks {
			if tok == "" || len(tok) > MaxTokenBytes {
				t.Fatalf("token of %d bytes", len(tok))
			}
			for i := 0; i < len(tok); i++ {
				if tok[i] <= ' ' || tok[i] >= 0x7f {
					t.Fatalf("token %q has byte %#x", tok, tok[i])
				}
			}
		}
	})
}

package loadtest

import (
	"context"
	"testing"
	"time"

	"github.com/portico-gateway/portico/management/client"
)

// The generator's hand-built signature is the SDK signer's, byte for
// byte, for ids that need escaping and across days.
func TestPostSignerMatchesSDK(t *testing.T) {
	s := newPostSigner("AKIDPORTICO", "secret/with+chars", "eu-west-1")
	at := time.Date(2026, 12, 2, 23, 59, 59, 0, time.UTC)
	for i, id := range []string{"Xa1bYq9LdGgCEkA=", "a+b/c", "plain", "é~-_."} {
		now := at.Add(time.Duration(i) * time.Second) // crosses midnight
		body := []byte("message " + id)
		fast := s.signFast([]byte("X: y\r\n"), "127.0.0.1:9090", "/dev/@connections/"+client.EscapeConnectionID(id), body, now)
		sdk, err := s.signSDK(context.Background(), "127.0.0.1:9090", "/dev/@connections/", "/dev/@connections/", id, body, now)
		if err != nil {
			t.Fatal(err)
		}
		if string(fast) != "X: y\r\n"+string(sdk) {
			t.Errorf("id %q:\n fast %q\n sdk  %q", id, fast, sdk)
		}
	}
}

// BenchmarkPostSigner is the generator's signing of one post.
func BenchmarkPostSigner(b *testing.B) {
	s := newPostSigner("AKIDPORTICO", "secret", "us-east-1")
	body := []byte("0123456789-1733100000000000000")
	now := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	target := "/dev/@connections/" + client.EscapeConnectionID("Xa1bYq9LdGgCEkA=")
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = s.sign(context.Background(), dst[:0], "127.0.0.1:9090", "/dev/@connections/", "/dev/@connections/", "Xa1bYq9LdGgCEkA=", target, body, now); err != nil {
			b.Fatal(err)
		}
	}
}

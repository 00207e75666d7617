//go:build linux

package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestServerFrames(t *testing.T) {
	// Server frames are unmasked; build three and feed them byte by byte.
	var in []byte
	for _, p := range []string{"a", strings.Repeat("b", 300), ""} {
		in = append(in, 0x81)
		if len(p) < 126 {
			in = append(in, byte(len(p)))
		} else {
			in = append(in, 126, byte(len(p)>>8), byte(len(p)))
		}
		in = append(in, p...)
	}
	var got []string
	var pending []byte
	for _, c := range in {
		pending = append(pending, c)
		n, err := parseServerFrames(pending, func(op byte, p []byte) { got = append(got, string(p)) })
		if err != nil {
			t.Fatal(err)
		}
		pending = append([]byte(nil), pending[n:]...)
	}
	if len(got) != 3 || got[0] != "a" || len(got[1]) != 300 || got[2] != "" {
		t.Errorf("frames %q", got)
	}
	if _, err := parseServerFrames([]byte{0x81, 0x81, 0, 0, 0, 0, 'x'}, func(byte, []byte) {}); err == nil {
		t.Error("a masked server frame was accepted")
	}
}

func TestStamp(t *testing.T) {
	msg := echoMessage("echo")
	ts, ok := stamp(msg)
	if !ok || time.Since(time.Unix(0, ts)) > time.Second {
		t.Errorf("stamp(%s) = %d %v", msg, ts, ok)
	}
	if _, ok := stamp([]byte(`{"n":12345}`)); ok {
		t.Error("found a stamp in a short number")
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, o := range []Options{
		{URL: "ws://10.0.0.1:8080/dev", Connections: 1},
		{URL: "ws://127.0.0.1:8080/dev", Connections: 1, Management: "http://192.168.1.1:9090/dev"},
		{URL: "ws://127.0.0.1:8080/dev", Connections: 1, Hold: time.Hour},
		{URL: "ws://127.0.0.1:8080/dev", Connections: 0},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// TestEchoSmoke drives the echo scenario against a gorilla echo server.
func TestEchoSmoke(t *testing.T) {
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, data, err := c.ReadMessage()
			if err != nil || c.WriteMessage(mt, data) != nil {
				return
			}
		}
	}))
	defer srv.Close()
	sum, err := Run(context.Background(), Options{
		Scenario: "echo", URL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/",
		Connections: 20, Duration: time.Second, Loops: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Connected != 20 || len(sum.Failures) != 0 || sum.Messages < 100 || sum.RoundTrip.Count != sum.Messages {
		t.Errorf("summary %+v", sum)
	}
}

func FuzzServerFrames(f *testing.F) {
	f.Add([]byte{0x81, 0x01, 'a'})
	f.Add([]byte{0x82, 126, 0, 2, 1, 2})
	f.Add([]byte{0x88, 127, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		n, _ := parseServerFrames(in, func(byte, []byte) {})
		if n < 0 || n > len(in) {
			t.Fatalf("consumed %d of %d", n, len(in))
		}
	})
}

package channels

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseRecover: whatever a client puts in ?recover=, parsing never
// panics, and what it accepts is a valid name and a position that prints
// back to the same text.
func FuzzParseRecover(f *testing.F) {
	for _, s := range []string{"room:1@Ep0ch:17", "a@b@c:0", "@:", "x@y:18446744073709551615", "x@y:18446744073709551616"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, pos, err := ParseRecover(s)
		if err != nil {
			return
		}
		if ValidName(name) != nil {
			t.Fatalf("accepted name %q", name)
		}
		if got := name + "@" + pos.String(); got != s {
			t.Fatalf("%q parsed as %q", s, got)
		}
	})
}

// FuzzParseList: a header value is either refused or split into valid
// names that are all in it.
func FuzzParseList(f *testing.F) {
	for _, s := range []string{"room:1, user:42", ",,", " a ,b", "bad name"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		names, err := ParseList(s)
		if err != nil {
			return
		}
		if len(names) > MaxListed {
			t.Fatalf("%d names", len(names))
		}
		for _, n := range names {
			if ValidName(n) != nil || !strings.Contains(s, n) {
				t.Fatalf("name %q from %q", n, s)
			}
		}
	})
}

func busCases() []BusMessage {
	return []BusMessage{
		{Kind: KindPublish, Seq: 17, Epoch: "Xk3hQ9aLm2c", From: "node-a", ID: 9, Data: []byte(`{"n":1}`)},
		{Kind: KindPublish, Seq: 1, From: "n", Exclude: "Ab3=", Binary: true, Data: []byte{0, 0xff, ' '}},
		{Kind: KindPresence, From: "node-b", Exclude: "Ab3=", Data: []byte(`{"type":"portico.presence"}`)},
		{Kind: KindPublish, Seq: 1<<64 - 1, Epoch: "e", From: "", Data: []byte{}},
	}
}

func TestBusMessageRoundTrip(t *testing.T) {
	for _, m := range busCases() {
		b := AppendBusMessage(nil, &m)
		got, err := DecodeBusMessage(b)
		if err != nil {
			t.Fatalf("decode(%+v): %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip: got %+v, want %+v", got, m)
		}
		for i := range b {
			b[i] = 'x'
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("decoded message shares memory with its input: %+v", got)
		}
	}
	good := AppendBusMessage(nil, &busCases()[0])
	for name, b := range map[string][]byte{
		"empty":         nil,
		"no epoch":      []byte("17"),
		"leading zero":  append([]byte("017 "), good[3:]...),
		"other version": bytes.Replace(good, []byte(" \x01\x01"), []byte(" \x02\x01"), 1),
		"unknown kind":  bytes.Replace(good, []byte(" \x01\x01"), []byte(" \x01\x07"), 1),
		"truncated":     good[:len("17 Xk3hQ9aLm2c ")+5],
		"offset > u64":  append([]byte("18446744073709551616 "), good[3:]...),
	} {
		if _, err := DecodeBusMessage(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzBusMessage: no input makes the decoder panic, and what it accepts
// survives encoding and decoding again unchanged.
func FuzzBusMessage(f *testing.F) {
	for _, m := range busCases() {
		f.Add(AppendBusMessage(nil, &m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeBusMessage(b)
		if err != nil {
			return
		}
		again, err := DecodeBusMessage(AppendBusMessage(nil, &m))
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("decoded %q as %+v; encoding and decoding that gave %+v, %v", b, m, again, err)
		}
	})
}

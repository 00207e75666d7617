package cluster

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func envelopeCases() []envelope {
	return []envelope{
		{Seq: 1, From: "node-a", Op: &Op{Kind: "post", Stage: "dev", ID: "Ab3=", Data: []byte(`{"hello":"world"}`)}},
		{Seq: 1 << 40, From: "n", Op: &Op{Kind: "get", Stage: "prod", ID: "x"}},
		{Seq: 7, From: "node-b", Op: &Op{Kind: "delete", Stage: "", ID: ""}},
		{Seq: 8, From: "node-c", Op: &Op{Kind: "subscribe", Stage: "dev", ID: "Ab3=", Channel: "room:1", Recover: "Xk3hQ9aLm2c:17"}},
		{Seq: 9, From: "node-c", Op: &Op{Kind: "unsubscribe", Stage: "dev", ID: "Ab3=", Channel: "a/b@c"}},
		{Seq: 2, From: "node-b", Result: &Result{Status: 200}},
		{Seq: 3, From: "node-b", Result: &Result{Status: 410, ErrType: "GoneException", Message: "gone"}},
		{Seq: 4, From: "node-b", Result: &Result{Status: 200, Body: []byte(`{"connectedAt":"x"}`)}},
		{Seq: 5, From: "node-b", Result: &Result{Status: 200, Body: []byte{}}},
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, e := range envelopeCases() {
		b := appendEnvelope(nil, &e)
		got, err := decodeEnvelope(b)
		if err != nil {
			t.Fatalf("decode(%+v): %v", e, err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("round trip changed the envelope:\n got %+v %+v %+v\nwant %+v %+v %+v", got, got.Op, got.Result, e, e.Op, e.Result)
		}
		// Decoded byte slices do not alias the input.
		for i := range b {
			b[i] = 0xff
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("decoded envelope shares memory with its input: %+v", got)
		}
	}
}

func TestEnvelopeRejects(t *testing.T) {
	good := appendEnvelope(nil, &envelope{Seq: 9, From: "a", Op: &Op{Kind: "post", Stage: "dev", ID: "id", Data: []byte("hi")}})
	reply := appendEnvelope(nil, &envelope{Seq: 9, From: "a", Result: &Result{Status: 200, Body: []byte("{}")}})
	cases := map[string][]byte{
		"empty":           nil,
		"other version":   append([]byte{envelopeVersion + 1}, good[1:]...),
		"unknown kind":    append([]byte{envelopeVersion, 9}, good[2:]...),
		"truncated":       good[:len(good)-1],
		"trailing bytes":  append(append([]byte{}, good...), 0),
		"unknown op code": bytes.Replace(good, []byte{1, 3, 'd', 'e', 'v'}, []byte{7, 3, 'd', 'e', 'v'}, 1),
		"version 1":       append([]byte{1}, good[1:len(good)-2]...),
		"bad body flag":   bytes.Replace(reply, []byte{1, 2, '{', '}'}, []byte{2, 2, '{', '}'}, 1),
		"status too big":  appendEnvelope(nil, &envelope{Seq: 1, From: "a", Result: &Result{Status: 1000}}),
		"huge length":     {envelopeVersion, kindRequest, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for name, b := range cases {
		if _, err := decodeEnvelope(b); !errors.Is(err, errMalformed) {
			t.Errorf("%s: got %v, want errMalformed", name, err)
		}
	}
}

// FuzzEnvelope checks that no input makes the decoder panic, and that
// whatever it accepts survives encoding and decoding again unchanged.
func FuzzEnvelope(f *testing.F) {
	for _, e := range envelopeCases() {
		f.Add(appendEnvelope(nil, &e))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		again, err := decodeEnvelope(appendEnvelope(nil, &e))
		if err != nil || !reflect.DeepEqual(again, e) {
			t.Fatalf("decoded %x as %+v; encoding and decoding that gave %+v, %v", b, e, again, err)
		}
	})
}

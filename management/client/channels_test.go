package client

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestPublish(t *testing.T) {
	clearEnvCredentials(t)
	srv := newFakeServer(t, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"delivered":3,"dropped":1,"nodes":2}`))
	})
	c := newClient(t, srv.URL+"/prod", Options{})
	got, err := c.Publish(context.Background(), "room:1/a", []byte(`{"x":1}`), PublishOptions{Exclude: "abc="})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Published{Delivered: 3, Dropped: 1, Nodes: 2}); got != want {
		t.Errorf("Publish = %+v, want %+v", got, want)
	}
	r := srv.last(t)
	if r.Method != http.MethodPost || r.RequestURI != "/prod/@channels/room%3A1%2Fa?exclude=abc%3D" {
		t.Errorf("request = %s %s", r.Method, r.RequestURI)
	}
	if r.Path != "/prod/@channels/room:1/a" {
		t.Errorf("decoded path = %s", r.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q, want text (a text frame)", ct)
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=portico/") {
		t.Errorf("Authorization = %q (signed like every call: see TestSubscribe)", r.Header.Get("Authorization"))
	}

	if _, err := c.Publish(context.Background(), "bin", []byte{0xff}, PublishOptions{Binary: true}); err != nil {
		t.Fatal(err)
	}
	if ct := srv.last(t).Header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("binary Content-Type = %q", ct)
	}
	if _, err := c.Publish(context.Background(), "", nil, PublishOptions{}); err == nil {
		t.Error("Publish without a channel: no error")
	}
}

func TestPublishErrors(t *testing.T) {
	clearEnvCredentials(t)
	srv := newFakeServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Amzn-ErrorType", "BadRequestException")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"message":"invalid channel name"}`))
	})
	c := newClient(t, srv.URL+"/prod", Options{})
	_, err := c.Publish(context.Background(), "bad name", nil, PublishOptions{})
	var api *APIError
	if !errors.As(err, &api) || api.StatusCode != http.StatusBadRequest || api.Message != "invalid channel name" {
		t.Fatalf("err = %#v, want an APIError 400 with the message", err)
	}
	srv2 := newFakeServer(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`not json`)) })
	if _, err := newClient(t, srv2.URL+"/prod", Options{}).Publish(context.Background(), "a", nil, PublishOptions{}); err == nil {
		t.Error("an answer that is not JSON: no error")
	}
}

func TestSubscribe(t *testing.T) {
	clearEnvCredentials(t)
	srv := newFakeServer(t, status(http.StatusNoContent))
	c := newClient(t, srv.URL+"/prod", Options{})
	if err := c.Subscribe(context.Background(), "abc=", "room:1"); err != nil {
		t.Fatal(err)
	}
	r := srv.last(t)
	if r.Method != http.MethodPut || r.RequestURI != "/prod/@connections/abc%3D/channels/room%3A1" {
		t.Errorf("request = %s %s", r.Method, r.RequestURI)
	}
	verifySignature(t, r, placeholderCreds, "us-east-1")
	if err := c.Unsubscribe(context.Background(), "abc=", "room:1"); err != nil {
		t.Fatal(err)
	}
	if r := srv.last(t); r.Method != http.MethodDelete {
		t.Errorf("Unsubscribe method = %s", r.Method)
	}

	gone := newFakeServer(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Amzn-ErrorType", "GoneException")
		w.WriteHeader(http.StatusGone)
	})
	var g *GoneException
	if err := newClient(t, gone.URL+"/prod", Options{}).Subscribe(context.Background(), "x", "c"); !errors.As(err, &g) {
		t.Fatalf("err = %v, want GoneException", err)
	}
	if err := c.Subscribe(context.Background(), "", "c"); err == nil {
		t.Error("Subscribe without an id: no error")
	}
}

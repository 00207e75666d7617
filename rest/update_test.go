package rest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portico-gateway/portico/routing/integration"
)

func mockAPI(body string, routes ...string) *API {
	a := &API{Name: "pets", ID: "q1w2e3r4t5", Protocol: ProtocolHTTP, Stages: []Stage{{Name: "prod"}}, Routes: map[string]Route{}}
	for _, k := range routes {
		a.Routes[k] = Route{Integration: &integration.Spec{Type: "mock", StatusCode: 200, Body: body}}
	}
	return a
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "http://h"+path, nil))
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

// Update serves the new routes from the next request on; a bad API
// leaves the old one serving.
func TestHandlerUpdate(t *testing.T) {
	h, err := New(Options{API: mockAPI("v1", "GET /pets")})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, h, "/prod/pets"); code != 200 || body != "v1" {
		t.Fatalf("before: %d %q", code, body)
	}
	if err := h.Update(Options{API: mockAPI("v2", "GET /pets", "GET /owners")}); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, h, "/prod/pets"); code != 200 || body != "v2" {
		t.Errorf("after: %d %q", code, body)
	}
	if code, body := get(t, h, "/prod/owners"); code != 200 || body != "v2" {
		t.Errorf("a new route: %d %q", code, body)
	}
	if err := h.Update(Options{API: mockAPI("v3", "GET /pets/{id")}); err == nil {
		t.Fatal("Update accepted a bad route key")
	}
	if code, body := get(t, h, "/prod/pets"); code != 200 || body != "v2" {
		t.Errorf("after a failed Update: %d %q", code, body)
	}
}

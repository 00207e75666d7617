package rest

import (
	"strings"
	"testing"
)

func newMatcher(t testing.TB, keys ...string) *Matcher[string] {
	t.Helper()
	var m Matcher[string]
	for _, k := range keys {
		rk, err := ParseRouteKey(k)
		if err != nil {
			t.Fatalf("ParseRouteKey(%q): %v", k, err)
		}
		if err := m.Add(rk, k); err != nil {
			t.Fatalf("Add(%q): %v", k, err)
		}
	}
	return &m
}

// TestMatchPrecedence follows the example of AWS's "Routing API
// requests" (http-api-develop-routes): an exact route, a parameter, a
// greedy parameter and ANY.
func TestMatchPrecedence(t *testing.T) {
	m := newMatcher(t, "GET /pets/dog/1", "GET /pets/dog/{id}", "GET /pets/{proxy+}", "ANY /{proxy+}",
		"POST /pets", "ANY /pets", "GET /", "DELETE /pets/{id}/toys/{toy}")
	for _, c := range []struct {
		method, path, want string
		params             string
	}{
		{"GET", "/pets/dog/1", "GET /pets/dog/1", ""},
		{"GET", "/pets/dog/2", "GET /pets/dog/{id}", "id=2"},
		{"GET", "/pets/cat/1", "GET /pets/{proxy+}", "proxy=cat/1"},
		{"POST", "/pets/cat/1", "ANY /{proxy+}", "proxy=pets/cat/1"},
		{"POST", "/pets", "POST /pets", ""},
		{"PUT", "/pets", "ANY /pets", ""},
		{"GET", "/pets", "ANY /pets", ""}, // ANY on the exact path beats a greedy GET
		{"GET", "/", "GET /", ""},
		{"POST", "/", "", ""}, // a greedy parameter needs at least one segment
		{"DELETE", "/pets/7/toys/b%2Fc", "DELETE /pets/{id}/toys/{toy}", "id=7 toy=b/c"},
		{"GET", "/pets/dog/1/", "GET /pets/{proxy+}", "proxy=dog/1/"},
		{"GET", "/pe%74s/dog/1", "GET /pets/dog/1", ""},
	} {
		got, ok := m.Lookup(c.method, c.path)
		if c.want == "" {
			if ok {
				t.Errorf("%s %s: matched %q, want no route", c.method, c.path, got.Key)
			}
			continue
		}
		if !ok || got.Key != c.want || got.Value != c.want {
			t.Errorf("%s %s: got %q (%v), want %q", c.method, c.path, got.Key, ok, c.want)
			continue
		}
		var ps []string
		for _, k := range []string{"id", "proxy", "toy"} {
			if v, ok := got.Params[k]; ok {
				ps = append(ps, k+"="+v)
			}
		}
		if strings.Join(ps, " ") != c.params {
			t.Errorf("%s %s: params %v, want %q", c.method, c.path, got.Params, c.params)
		}
	}
}

func TestRouteKeyErrors(t *testing.T) {
	for _, k := range []string{"GET", "FETCH /a", "GET a", "GET /a//b", "GET /{proxy+}/a", "GET /a{b}", "GET /{a}/{a}", "GET /{}", "GET /{a b}"} {
		if _, err := ParseRouteKey(k); err == nil {
			t.Errorf("ParseRouteKey(%q) accepted it", k)
		}
	}
	var m Matcher[int]
	a, _ := ParseRouteKey("GET /pets/{id}")
	b, _ := ParseRouteKey("POST /pets/{name}")
	if err := m.Add(a, 1); err != nil {
		t.Fatal(err)
	}
	if err := m.Add(b, 2); err == nil {
		t.Error("two parameter names at one position were accepted")
	}
	if err := m.Add(a, 3); err == nil {
		t.Error("the same route twice was accepted")
	}
}

func FuzzMatch(f *testing.F) {
	for _, s := range []string{"/pets/dog/1", "/", "/a/b/c", "/pets/%zz", "//", "/pets/dog/1/"} {
		f.Add("GET", s)
	}
	m := newMatcher(f, "GET /pets/dog/1", "GET /pets/dog/{id}", "GET /pets/{proxy+}", "ANY /{proxy+}", "GET /")
	f.Fuzz(func(t *testing.T, method, path string) {
		got, ok := m.Lookup(method, path)
		if ok && got.Value != got.Key {
			t.Fatalf("value %q for key %q", got.Value, got.Key)
		}
		if ok && strings.Contains(got.Key, "{") && len(got.Params) == 0 {
			t.Fatalf("route %q matched without parameters", got.Key)
		}
	})
}

func FuzzParseRouteKey(f *testing.F) {
	for _, s := range []string{"GET /pets/{id}", "ANY /{proxy+}", "GET /", "POST /a/{b}/c", "GET /{a+}/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		rk, err := ParseRouteKey(key)
		if err != nil {
			return
		}
		var m Matcher[int]
		if err := m.Add(rk, 1); err != nil {
			t.Fatalf("a parsed key %q does not add: %v", key, err)
		}
	})
}

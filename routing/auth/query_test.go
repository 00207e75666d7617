package auth

import (
	"net/url"
	"testing"
)

// FuzzLastQueryValue: lastQueryValue reads what url.ParseQuery reads:
// the last value of the parameter, "" when it has none.
func FuzzLastQueryValue(f *testing.F) {
	for _, s := range [][2]string{
		{"token=abc", "token"}, {"token=a&token=b", "token"}, {"a=1&token=x%20y+z", "token"}, {"tok%65n=v", "token"},
		{"token=a;b", "token"}, {"token=%zz&token=ok", "token"}, {"token=ok&token=%zz", "token"}, {"token", "token"},
		{"&&token=&", "token"}, {"t+k=1", "t k"}, {"=v", ""}, {"token=eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "token"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, raw, name string) {
		q, _ := url.ParseQuery(raw)
		var want string
		if vals := q[name]; len(vals) > 0 {
			want = vals[len(vals)-1]
		}
		if got := lastQueryValue(raw, name); got != want {
			t.Fatalf("lastQueryValue(%q, %q) = %q, url.ParseQuery gives %q", raw, name, got, want)
		}
	})
}

// A query identity source reads the raw query when the transport left
// Query nil, as it reads Query.
func TestQuerySourceWithoutParsedQuery(t *testing.T) {
	src, err := ParseSource("route.request.querystring.token")
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"token=a%2Bb&x=1", "token=first&token=%20last%20", "x=1", "", "token=bad%zz"} {
		q, _ := url.ParseQuery(raw)
		want, wantOK := src.Value(&Request{Query: q, RawQuery: raw})
		got, ok := src.Value(&Request{RawQuery: raw})
		if got != want || ok != wantOK {
			t.Errorf("%q: %q %v without Query, %q %v with it", raw, got, ok, want, wantOK)
		}
	}
}

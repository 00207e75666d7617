package rest

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestValidation(t *testing.T) {
	models, err := CompileModels("abc123", map[string]any{
		"Pet": map[string]any{"$schema": "http://json-schema.org/draft-04/schema#", "type": "object", "required": []any{"name"},
			"properties": map[string]any{"name": map[string]any{"type": "string"}, "owner": map[string]any{"$ref": ModelURL("abc123", "Owner")}}},
		"Owner": map[string]any{"type": "object", "required": []any{"id"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	v := &Validation{Body: true, Params: true, Models: map[string]*Model{"application/json": models["Pet"]},
		Required: []RequestParameter{{ParamHeader, "x-a"}, {ParamQueryString, "b"}}}
	for _, c := range []struct {
		query, header, contentType, body string
		want                             *gatewayError
	}{
		{"b=1", "1", "application/json", `{"name":"rex","owner":{"id":1}}`, nil},
		{"b=1", "1", "", `{"name":"rex"}`, nil},
		{"b=1", "1", "text/plain", `anything`, nil}, // no model for text/plain, no $default
		{"", "", "application/json", `{"name":"rex"}`, missingParams([]string{"x-a", "b"})},
		{"b=", "1", "application/json", `{"name":"rex"}`, missingParams([]string{"b"})},
		{"b=1", "1", "application/json; charset=utf-8", `{"name":"rex","owner":{}}`, errBadBody},
		{"b=1", "1", "application/json", ``, errBadBody},
		{"b=1", "1", "application/json", `{"name":`, errBadBody},
	} {
		r := httptest.NewRequest("POST", "/pets?"+c.query, nil)
		if c.header != "" {
			r.Header.Set("X-A", c.header)
		}
		if c.contentType != "" {
			r.Header.Set("Content-Type", c.contentType)
		}
		got := v.check(&exchange{r: r, body: []byte(c.body)})
		switch {
		case c.want == nil && got != nil:
			t.Errorf("%+v: refused %s (%s)", c, got.message, got.validation)
		case c.want != nil && (got == nil || got.typ != c.want.typ || got.restBody != c.want.restBody):
			t.Errorf("%+v: got %+v, want %s", c, got, c.want.restBody)
		}
	}
	if got := missingParams([]string{"x-a", "b"}).restBody; got != `{"message": "Missing required request parameters: [x-a, b]"}` {
		t.Errorf("parameters body %s", got)
	}
	_, err = CompileModels("abc123", map[string]any{"Bad": map[string]any{"$ref": "https://example.com/schema.json"}})
	var me *ModelError
	if !errors.As(err, &me) || me.Model != "Bad" || !errors.Is(err, ErrBadModel) || !strings.Contains(err.Error(), "Bad") {
		t.Errorf("a model that refers outside: %v", err)
	}
}

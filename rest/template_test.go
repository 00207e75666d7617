package rest

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func testExchange() *exchange {
	r := httptest.NewRequest("GET", "/prod/pets/7?q=1", nil)
	r.Header.Set("X-Client", "c-1")
	return &exchange{
		h: &table{api: &API{ID: "abc123", Protocol: ProtocolREST}}, r: r, id: "req-1",
		st: &stage{name: "prod", vars: map[string]string{"env": "test"}}, rt: &route{key: "GET /pets/{id}", path: "/pets/{id}"},
		params: map[string]string{"id": "7"}, path: "/pets/7", sourceIP: "127.0.0.1",
		err: &gatewayError{typ: Unauthorized, message: `say "no"`},
	}
}

func TestTemplateRender(t *testing.T) {
	x := testExchange()
	for _, c := range []struct{ tmpl, want string }{
		{`{"message":$context.error.messageString}`, `{"message":"say \"no\""}`},
		{`$context.error.message.`, `say "no".`},
		{`id=$context.requestId, stage=${context.stage}`, `id=req-1, stage=prod`},
		{`$context.resourcePath $context.path $context.httpMethod $context.identity.sourceIp`, `/pets/{id} /prod/pets/7 GET 127.0.0.1`},
		{`$stageVariables.env/$context.error.responseType`, `test/UNAUTHORIZED`},
		{`cost: $5, $context, $contextual, ${context.stage`, `cost: $5, $context, $contextual, ${context.stage`},
		{`[$context.nothing]`, `[]`},
	} {
		if got := ParseTemplate(c.tmpl).Render(x); got != c.want {
			t.Errorf("%q: got %q, want %q", c.tmpl, got, c.want)
		}
	}
	x.err = &gatewayError{typ: AuthorizerFailure}
	if got := ParseTemplate(`{"message":$context.error.messageString}`).Render(x); got != `{"message":null}` {
		t.Errorf("no message: %s", got)
	}
}

func TestParamExpr(t *testing.T) {
	x := testExchange()
	for _, c := range []struct {
		expr, want string
		ok         bool
	}{
		{`'static, value'`, "static, value", true},
		{"method.request.header.x-client", "c-1", true},
		{"method.request.querystring.q", "1", true},
		{"method.request.querystring.none", "", false},
		{"method.request.path.id", "7", true},
		{"stageVariables.env", "test", true},
		{"context.requestId", "req-1", true},
	} {
		p, err := ParseParamExpr(c.expr)
		if err != nil {
			t.Errorf("%q: %v", c.expr, err)
			continue
		}
		if v, ok := p.Eval(x); v != c.want || ok != c.ok {
			t.Errorf("%q: %q %v, want %q %v", c.expr, v, ok, c.want, c.ok)
		}
	}
	for _, bad := range []string{"", "'", "static", "method.request.header.", "method.request.body.x", "context.a b", "stageVariables."} {
		if _, err := ParseParamExpr(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if _, err := ParseRequestParameter("stageVariables.x"); err == nil {
		t.Error("a stage variable is no request parameter")
	}
}

// FuzzTemplate: any text parses, renders without panicking, and text
// without a reference renders as itself.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{`{"message":$context.error.messageString}`, `${context.stage}`, `$$context..x`, `$context.`, `${stageVariables.a-b}`, "plain"} {
		f.Add(s)
	}
	x := testExchange()
	f.Fuzz(func(t *testing.T, s string) {
		got := ParseTemplate(s).Render(x)
		if !strings.Contains(s, "$") && got != s {
			t.Fatalf("%q rendered %q", s, got)
		}
	})
}

// FuzzParamExpr: parsing never panics, and what parses evaluates.
func FuzzParamExpr(f *testing.F) {
	for _, s := range []string{`'x'`, "method.request.header.a", "method.request.querystring.q", "context.error.message", "stageVariables.", "''"} {
		f.Add(s)
	}
	x := testExchange()
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseParamExpr(s)
		if err != nil {
			return
		}
		if p.Source == "" {
			t.Fatalf("%q parsed without a source", s)
		}
		_, _ = p.Eval(x)
		_, _ = ParseRequestParameter(s)
	})
}

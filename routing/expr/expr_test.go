package expr

import (
	"errors"
	"slices"
	"testing"
)

const awsBody = `{"service":"chat","action":"join","data":{"room":"r1"},"items":[{"id":1},{"id":"two"}],"a.b":"dotted","n":3.5,"ok":true,"obj":{"x":[1,2]},"esc":"q\"uote"}`

func TestEval(t *testing.T) {
	r := Map{"context.connectionId": "Xa1bYq9LdGgCEkA=", "stageVariables.backend": "http://127.0.0.1:8000"}
	for _, tc := range []struct{ expr, body, want string }{
		// The examples of the AWS developer guide.
		{"$request.body.action", awsBody, "join"},
		{"${request.body.service}/${request.body.action}", awsBody, "chat/join"},
		{"${request.body.action}-${request.body.nope}", awsBody, "join-"},
		{"$request.body.data.room", awsBody, "r1"},
		{"action", awsBody, "action"},
		{`\$default`, awsBody, "$default"},
		// Paths.
		{"$request.body.items[1].id", awsBody, "two"},
		{"$request.body.items[0].id", awsBody, "1"},
		{"$request.body['a.b']", awsBody, "dotted"},
		{`$request.body["a.b"]`, awsBody, "dotted"},
		{"${request.body.$.action}", awsBody, "join"},
		{"$request.body.n", awsBody, "3.5"},
		{"$request.body.ok", awsBody, "true"},
		{"$request.body.obj", awsBody, `{"x":[1,2]}`},
		{"$request.body.esc", awsBody, `q"uote`},
		{"$request.body", `{"a":1}`, `{"a":1}`},
		{"[$request.body.action].", awsBody, "[join]."},
		// Not JSON: every body variable is empty.
		{"$request.body.action", "not json", ""},
		{"x${request.body.action}y", `{"action":`, "xy"},
		// Resolver variables.
		{"$context.connectionId", "", "Xa1bYq9LdGgCEkA="},
		{"${stageVariables.backend}/events", "", "http://127.0.0.1:8000/events"},
		{"$context.unknown!", "", "!"},
		// A lone dollar is literal.
		{"cost: $5 $", "", "cost: $5 $"},
	} {
		tpl, err := Compile(tc.expr)
		if err != nil {
			t.Errorf("Compile(%q): %v", tc.expr, err)
			continue
		}
		if got := tpl.Eval([]byte(tc.body), r); got != tc.want {
			t.Errorf("Eval(%q) on %s = %q, want %q", tc.expr, tc.body, got, tc.want)
		}
		if got := string(tpl.AppendEval(nil, []byte(tc.body), r)); got != tc.want {
			t.Errorf("AppendEval(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

func TestNoRecursion(t *testing.T) {
	tpl := MustCompile("$request.body.v")
	if got := tpl.Eval([]byte(`{"v":"$request.body.v"}`), nil); got != "$request.body.v" {
		t.Errorf("got %q", got)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, s := range []string{"${request.body.x", "${}", "a${ }b", "$request.body[x]", "${request.body.a[}"} {
		if _, err := Compile(s); !errors.Is(err, ErrSyntax) {
			t.Errorf("Compile(%q) = %v, want ErrSyntax", s, err)
		}
	}
}

func TestVarsStaticPartial(t *testing.T) {
	tpl := MustCompile("${stageVariables.host}/x/$context.connectionId?a=$request.body.a")
	if got := tpl.Vars(); !slices.Equal(got, []string{"stageVariables.host", "context.connectionId", "request.body.a"}) {
		t.Errorf("Vars = %v", got)
	}
	if tpl.IsStatic() || !MustCompile(`lit \$x`).IsStatic() {
		t.Error("IsStatic wrong")
	}
	p := tpl.Partial("stageVariables.", Map{"stageVariables.host": "h:1"})
	if got := p.Vars(); !slices.Equal(got, []string{"context.connectionId", "request.body.a"}) {
		t.Errorf("Partial Vars = %v", got)
	}
	if got := p.Eval([]byte(`{"a":"b"}`), Map{"context.connectionId": "id"}); got != "h:1/x/id?a=b" {
		t.Errorf("Partial Eval = %q", got)
	}
	// A substituted value is literal text, never evaluated again.
	q := MustCompile("$stageVariables.v").Partial("stageVariables.", Map{"stageVariables.v": "$context.x"})
	if got := q.Eval(nil, Map{"context.x": "no"}); got != "$context.x" {
		t.Errorf("Partial value re-evaluated: %q", got)
	}
}

func TestValidateRouteSelection(t *testing.T) {
	for s, ok := range map[string]bool{
		"$request.body.action": true, "${request.body.a}/${request.body.b}": true, "static": true,
		"$context.routeKey": false, "$request.header.x": false,
	} {
		err := ValidateRouteSelection(MustCompile(s))
		if (err == nil) != ok {
			t.Errorf("ValidateRouteSelection(%q) = %v", s, err)
		}
	}
}

func TestAppendEvalDoesNotAllocate(t *testing.T) {
	tpl := MustCompile("$request.body.action")
	body := []byte(`{"action":"sendmessage","data":"hello"}`)
	buf := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		buf = tpl.AppendEval(buf[:0], body, nil)
	})
	if allocs != 0 || string(buf) != "sendmessage" {
		t.Errorf("AppendEval: %v allocs, result %q", allocs, buf)
	}
}

func BenchmarkRouteSelection(b *testing.B) {
	tpl := MustCompile("$request.body.action")
	body := []byte(`{"action":"sendmessage","data":"hello world, a typical chat message"}`)
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = tpl.AppendEval(buf[:0], body, nil)
	}
}

func FuzzRouteSelection(f *testing.F) {
	f.Add("$request.body.action", []byte(awsBody))
	f.Add("${request.body.service}/${request.body.action}", []byte(awsBody))
	f.Add(`\$default`, []byte("not json"))
	f.Add("$request.body['a.b'][0]", []byte(`{"a.b":[1]}`))
	f.Add("${", []byte{})
	f.Add("$context.x$stageVariables.y", []byte(`[]`))
	f.Fuzz(func(t *testing.T, s string, body []byte) {
		tpl, err := Compile(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v does not wrap ErrSyntax", err)
			}
			return
		}
		r := Map{"context.x": "X"}
		got := tpl.Eval(body, r)
		if got != string(tpl.AppendEval(nil, body, r)) {
			t.Fatalf("Eval and AppendEval differ for %q", s)
		}
		if tpl.IsStatic() && got != tpl.Eval([]byte(`{"action":"other"}`), nil) {
			t.Fatalf("static %q depends on the body", s)
		}
		again, err := Compile(tpl.String())
		if err != nil || !slices.Equal(again.Vars(), tpl.Vars()) {
			t.Fatalf("recompiling %q: %v", s, err)
		}
		_ = ValidateRouteSelection(tpl)
	})
}

package config

import (
	"strings"
	"testing"
)

// restYAML is an API of protocol proto with the given stages and routes.
func restYAML(proto, extra, stages, routes string) string {
	return "apis:\n  - name: pets\n    protocol: " + proto + "\n" + extra + "    stages:\n" + stages + "    routes:\n" + routes
}

const petsStage = "      - name: prod\n"

func TestRESTConfig(t *testing.T) {
	f, err := Parse("ok.yaml", []byte(restYAML("http", "", "      - name: $default\n",
		"      GET /pets/{id}:\n        integration: {type: http, uri: http://127.0.0.1:1/}\n"+
			"      $default:\n        integration: {type: http_proxy, uri: http://127.0.0.1:1/}\n")))
	if err != nil {
		t.Fatal(err)
	}
	a := f.APIs[0]
	if got := a.Routes["GET /pets/{id}"].Integration.PayloadFormatVersion; got != "2.0" {
		t.Errorf("HTTP API payload default %q, want 2.0", got)
	}
	if a.Limits.MaxRequestBytes != 10<<20 || a.Protocol != "http" {
		t.Errorf("defaults: %d %q", a.Limits.MaxRequestBytes, a.Protocol)
	}
	f, err = Parse("rest.yaml", []byte(restYAML("rest", "", petsStage, "      ANY /{proxy+}:\n        integration: {type: http, uri: http://127.0.0.1:1/}\n")))
	if err != nil || f.APIs[0].Routes["ANY /{proxy+}"].Integration.PayloadFormatVersion != "1.0" {
		t.Errorf("REST API payload default: %v", err)
	}
	f, err = Parse("ws.yaml", []byte(base))
	if err != nil || f.APIs[0].Protocol != "websocket" {
		t.Errorf("protocol default: %v", err)
	}
}

func TestRESTConfigErrors(t *testing.T) {
	route := func(key, body string) string { return "      " + key + ":\n" + body }
	httpInt := "        integration: {type: http, uri: http://127.0.0.1:1/}\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown protocol", restYAML("grpc", "", petsStage, route("GET /a", httpInt)),
			`bad.yaml:3: apis[0].protocol: unknown protocol "grpc" (want websocket, http or rest)`},
		{"bad route key", restYAML("http", "", petsStage, route("GET pets", httpInt)),
			`apis[0].routes["GET pets"]: "GET pets": the path must start with '/'`},
		{"websocket key", restYAML("http", "", petsStage, route("$connect", httpInt)),
			`apis[0].routes.$connect: "$connect" is a WebSocket route key`},
		{"$default on REST", restYAML("rest", "", petsStage, route("$default", httpInt)),
			`apis[0].routes.$default: only HTTP APIs have a $default route`},
		{"$default stage on REST", restYAML("rest", "", "      - name: $default\n", route("GET /a", httpInt)),
			`apis[0].stages[0].name: only HTTP APIs (protocol: http) have a $default stage`},
		{"greedy not last", restYAML("http", "", petsStage, route("GET /{p+}/a", httpInt)),
			`a greedy parameter {p+} must be the last segment`},
		{"conflicting parameters", restYAML("http", "", petsStage, route("GET /pets/{id}", httpInt)+route("POST /pets/{name}", httpInt)),
			`apis[0].routes["POST /pets/{name}"]: "POST /pets/{name}": conflicts with {id}`},
		{"payload 2.0 on REST", restYAML("rest", "", petsStage, route("GET /a", "        integration: {type: http, uri: http://127.0.0.1:1/, payloadFormatVersion: \"2.0\"}\n")),
			`integration.payloadFormatVersion: REST APIs send payload format 1.0 only`},
		{"bad payload", restYAML("http", "", petsStage, route("GET /a", "        integration: {type: http, uri: http://127.0.0.1:1/, payloadFormatVersion: \"3\"}\n")),
			`integration.payloadFormatVersion: want "1.0" or "2.0", got "3"`},
		{"http_proxy on websocket", strings.Replace(base, "type: mock", "type: http_proxy, uri: \"http://127.0.0.1:1/\"", 1),
			`http_proxy integrations are for HTTP and REST APIs`},
		{"API keys on HTTP", restYAML("http", "", petsStage, route("GET /a", "        apiKeyRequired: true\n"+httpInt)),
			`apis[0].routes["GET /a"].apiKeyRequired: HTTP APIs have no API keys`},
		{"CORS on REST", restYAML("rest", "    cors: {allowOrigins: [\"*\"]}\n", petsStage, route("GET /a", httpInt)),
			`apis[0].cors: only HTTP APIs (protocol: http) answer CORS requests themselves`},
		{"credentials with any origin", restYAML("http", "    cors: {allowOrigins: [\"*\"], allowCredentials: true}\n", petsStage, route("GET /a", httpInt)),
			`apis[0].cors.allowCredentials: browsers refuse credentials with the origin "*"`},
		{"bad origin", restYAML("http", "    cors: {allowOrigins: [app.example.com]}\n", petsStage, route("GET /a", httpInt)),
			`apis[0].cors.allowOrigins[0]: want an origin such as`},
		{"max age", restYAML("http", "    cors: {maxAge: 90000}\n", petsStage, route("GET /a", httpInt)),
			`apis[0].cors.maxAge: want 0 to 86400 seconds, got 90000`},
		{"no integration", restYAML("http", "", petsStage, route("GET /a", "        authorizationType: NONE\n")),
			`apis[0].routes["GET /a"].integration: route "GET /a" needs an integration`},
		{"routeResponse", restYAML("http", "", petsStage, route("GET /a", "        routeResponse: true\n"+httpInt)),
			`apis[0].routes["GET /a"].routeResponse: only WebSocket routes have routeResponse`},
		{"payload on websocket", strings.Replace(base, "type: mock", "type: mock, payloadFormatVersion: \"2.0\"", 1),
			`payloadFormatVersion: only http integrations of HTTP and REST APIs have a payload format version`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

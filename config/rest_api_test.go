package config

import (
	"strings"
	"testing"
)

// The REST API options: models compile at load, names resolve, and each
// mistake is reported as file:line: key: reason.
func TestRESTAPIOptionsErrors(t *testing.T) {
	route := func(key, body string) string { return "      " + key + ":\n" + body }
	mock := "        integration: {type: mock}\n"
	models := "    models:\n      Pet: {type: object, required: [name]}\n    requestValidators:\n      all: {validateRequestBody: true, validateRequestParameters: true}\n"
	ok := restYAML("rest", models, petsStage, route("POST /pets", "        requestValidator: all\n        requestModels: {application/json: Pet}\n"+
		"        requestParameters: {method.request.header.x-id: true}\n"+mock))
	if _, err := Parse("ok.yaml", []byte(ok)); err != nil {
		t.Fatalf("a valid REST API: %v", err)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"bad schema", restYAML("rest", "    models:\n      Pet:\n        type: 12\n", petsStage, route("GET /a", mock)),
			`bad.yaml:5: apis[0].models.Pet: not a JSON Schema (draft 4)`},
		{"draft 4 forced", restYAML("rest", "    models:\n      Pet: {$schema: \"https://json-schema.org/draft/2020-12/schema\", type: object, exclusiveMinimum: 3}\n", petsStage, route("GET /a", mock)),
			`bad.yaml:5: apis[0].models.Pet: not a JSON Schema (draft 4)`},
		{"models on HTTP", restYAML("http", models, petsStage, route("GET /a", mock)),
			`apis[0].models: only REST APIs (protocol: rest) have models`},
		{"validator on HTTP", restYAML("http", "", petsStage, route("GET /a", "        requestValidator: all\n"+mock)),
			`apis[0].routes["GET /a"].requestValidator: only REST APIs (protocol: rest) validate requests`},
		{"unknown validator", restYAML("rest", models, petsStage, route("GET /a", "        requestValidator: some\n"+mock)),
			`apis[0].routes["GET /a"].requestValidator: unknown request validator "some" (the API's requestValidators: all)`},
		{"unknown model", restYAML("rest", models, petsStage, route("GET /a", "        requestModels: {application/json: Cat}\n"+mock)),
			`apis[0].routes["GET /a"].requestModels.application/json: unknown model "Cat" (the API's models: Pet)`},
		{"bad parameter", restYAML("rest", models, petsStage, route("GET /a", "        requestParameters: {querystring.x: true}\n"+mock)),
			`apis[0].routes["GET /a"].requestParameters["querystring.x"]: "querystring.x": want method.request.path.NAME`},
		{"unknown response type", restYAML("rest", "    gatewayResponses:\n      NOPE: {statusCode: 400}\n", petsStage, route("GET /a", mock)),
			`bad.yaml:5: apis[0].gatewayResponses.NOPE: unknown gateway response type "NOPE"`},
		{"bad status", restYAML("rest", "    gatewayResponses:\n      UNAUTHORIZED: {statusCode: 42}\n", petsStage, route("GET /a", mock)),
			`apis[0].gatewayResponses.UNAUTHORIZED.statusCode: want an HTTP status code, 100 to 599, got 42`},
		{"bad response parameter", restYAML("rest", "    gatewayResponses:\n      UNAUTHORIZED: {responseParameters: {gatewayresponse.header.X: unquoted}}\n", petsStage, route("GET /a", mock)),
			`gatewayResponses.UNAUTHORIZED.responseParameters["gatewayresponse.header.X"]: "unquoted": want 'static value'`},
		{"bad binary type", restYAML("rest", "    binaryMediaTypes: [png]\n", petsStage, route("GET /a", mock)),
			`apis[0].binaryMediaTypes[0]: want a media type such as image/png, image/* or */*, got "png"`},
		{"binary types on HTTP", restYAML("http", "    binaryMediaTypes: [image/png]\n", petsStage, route("GET /a", mock)),
			`apis[0].binaryMediaTypes: only REST APIs (protocol: rest) have binaryMediaTypes`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

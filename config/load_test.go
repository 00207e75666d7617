package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// base is a small valid file; the error cases below edit it. Its lines:
//
//	1 apis:
//	2   - name: a
//	3     stages:
//	4       - name: dev
//	5         variables: {backend: "http://127.0.0.1:1"}
//	6     routes:
//	7       $default:
//	8         integration: {type: mock}
const base = `apis:
  - name: a
    stages:
      - name: dev
        variables: {backend: "http://127.0.0.1:1"}
    routes:
      $default:
        integration: {type: mock}
`

// edit returns base with the first old replaced by new.
func edit(old, new string) string {
	if !strings.Contains(base, old) {
		panic("base has no " + old)
	}
	return strings.Replace(base, old, new, 1)
}

// beforeStages inserts lines (indented for API keys) at line 3 of base.
func beforeStages(lines string) string { return edit("    stages:", lines+"\n    stages:") }

// secondAPI is base's API again under another name, as a second list item
// (lines 9-16 of base+secondAPI).
var secondAPI = strings.Replace(strings.TrimPrefix(base, "apis:\n"), "name: a", "name: b", 1)

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // each must appear in the error
	}{
		// Problems found while decoding.
		{"unknown key", beforeStages("    limts: {}"),
			[]string{"bad.yaml:3: apis[0].limts: unknown key"}},
		{"unknown top-level key", "managment: {address: x}\n" + base,
			[]string{"bad.yaml:1: managment: unknown key"}},
		{"unknown key in a dotted route", edit("$default:\n        integration: {type: mock}", `chat.send: {integration: {type: mock, url: x}}`),
			[]string{`bad.yaml:7: apis[0].routes["chat.send"].integration.url: unknown key`}},
		{"channel overflow", beforeStages("    channelOverflow: block"),
			[]string{`bad.yaml:3: apis[0].channelOverflow: want "drop" or "close", got "block"`}},
		{"channel pattern and history", beforeStages("    channels:\n      - pattern: \"room 1\"\n        history: {size: -1, ttl: -1s}"),
			[]string{
				`bad.yaml:4: apis[0].channels[0].pattern: "room 1" is not a channel name pattern: channels: invalid channel name: character ' ' at 4 (allowed: A-Z a-z 0-9 : _ - . @ /)`,
				`bad.yaml:5: apis[0].channels[0].history.size: want 0 to 100000, got -1`,
				`bad.yaml:5: apis[0].channels[0].history.ttl: must not be negative, got -1s`,
			}},
		{"route subscribe", edit("$default:\n        integration: {type: mock}", "$default:\n        subscribe: [\"bad name\", \"room:${request.body\"]\n        integration: {type: mock}"),
			[]string{
				`bad.yaml:8: apis[0].routes.$default.subscribe[0]: channels: invalid channel name: character ' ' at 3 (allowed: A-Z a-z 0-9 : _ - . @ /)`,
				`bad.yaml:8: apis[0].routes.$default.subscribe[1]: expression syntax error: unterminated ${ at offset 5`,
			}},
		{"bad duration", beforeStages("    limits: {idleTimeout: soon}"),
			[]string{`bad.yaml:3: apis[0].limits.idleTimeout: want a duration such as "30s", got "soon"`}},
		{"bad duration, block style", beforeStages("    limits:\n      maxFrameBytes: 1024\n      pongTimeout: 5 seconds"),
			[]string{`bad.yaml:5: apis[0].limits.pongTimeout: want a duration such as "30s", got "5 seconds"`}},
		{"wrong type", beforeStages("    limits: {maxMessageBytes: 1024, maxFrameBytes: big}"),
			[]string{`bad.yaml:3: apis[0].limits.maxFrameBytes: want a whole number, got "big"`}},
		{"wrong type, long value", beforeStages("    limits: {maxFrameBytes: thirty-two-k}"),
			[]string{`bad.yaml:3: apis[0].limits.maxFrameBytes: want a whole number, got "thirty-..."`}},
		{"string instead of list", edit("    stages:\n      - name: dev\n        variables: {backend: \"http://127.0.0.1:1\"}", "    stages: dev"),
			[]string{`bad.yaml:3: apis[0].stages: want a list, got "dev"`}},
		{"mapping instead of string", edit("name: a", "name: {first: a}"),
			[]string{`bad.yaml:2: apis[0].name: want a string, got a mapping`}},
		{"bool wanted", edit("      $default:\n", "      $default:\n        routeResponse: sometimes\n"),
			[]string{`bad.yaml:8: apis[0].routes.$default.routeResponse: want true or false, got "sometimes"`}},
		{"top level not a mapping", "hello\n",
			[]string{`bad.yaml:1: (top level): want a mapping, got "hello"`}},
		{"duplicate key", edit("    stages:", "    name: again\n    stages:"),
			[]string{`bad.yaml:3: apis[0].name: duplicate key (first set on line 2)`}},
		{"not yaml", "apis: [\n",
			[]string{"bad.yaml:1: (syntax): did not find expected node content"}},
		{"tab indentation", "apis:\n\t- name: a\n",
			[]string{"bad.yaml:2: (syntax): found character that cannot start any token"}},
		{"second document", base + "---\napis: []\n",
			[]string{"bad.yaml:10: (top level): a second YAML document"}},

		// Problems found by Validate.
		{"no apis", "management: {address: 127.0.0.1:1}\n",
			[]string{"bad.yaml:1: apis: at least one API is required"}},
		{"empty file", "",
			[]string{"bad.yaml:1: apis: at least one API is required"}},
		{"empty api list", "apis: []\n",
			[]string{"bad.yaml:1: apis: at least one API is required"}},
		{"unknown integration type", edit("type: mock", "type: mok"),
			[]string{`bad.yaml:8: apis[0].routes.$default.integration.type: unknown integration type "mok" (want "http" or "mock")`}},
		{"integration without type", edit("type: mock", "timeout: 1s"),
			[]string{`bad.yaml:8: apis[0].routes.$default.integration.type: required: "http" or "mock"`}},
		{"http integration without uri", edit("type: mock", "type: http"),
			[]string{"bad.yaml:8: apis[0].routes.$default.integration.uri: an http integration needs a uri"}},
		{"missing stage variable", edit("type: mock", `type: http, uri: "${stageVariables.nope}/x"`),
			[]string{`bad.yaml:8: apis[0].routes.$default.integration.uri: stage "dev" has no variable "nope"`}},
		{"missing stage variable, unbraced", edit("type: mock", `type: http, uri: "$stageVariables.nope/x"`),
			[]string{`bad.yaml:8: apis[0].routes.$default.integration.uri: stage "dev" has no variable "nope"`}},
		{"missing stage variable in a second stage", strings.Replace(edit("    routes:", "      - name: prod\n    routes:"), "type: mock", `type: http, uri: "${stageVariables.backend}/x"`, 1),
			[]string{`bad.yaml:9: apis[0].routes.$default.integration.uri: stage "prod" has no variable "backend"`}},
		{"other variable in uri", edit("type: mock", `type: http, uri: "http://x/${context.connectionId}"`),
			[]string{`bad.yaml:8: apis[0].routes.$default.integration.uri: only ${stageVariables.name} may be used in a uri, not $context.connectionId`}},
		{"uri not http", edit("type: mock", `type: http, uri: "ftp://x"`),
			[]string{`bad.yaml:8: apis[0].routes.$default.integration.uri: want an http:// or https:// URL, got "ftp://x"`}},
		{"stage variable makes a bad uri", edit(`"http://127.0.0.1:1"`, `"backend.internal"`) + "      x:\n        integration: {type: http, uri: \"${stageVariables.backend}/x\"}\n",
			[]string{`bad.yaml:10: apis[0].routes.x.integration.uri: in stage "dev" the uri is "backend.internal/x": want an http:// or https:// URL`}},
		{"http with a response", edit("type: mock", `type: http, uri: "http://x", response: {body: hi}`),
			[]string{`bad.yaml:8: apis[0].routes.$default.integration.response: only mock integrations have a response`}},
		{"mock with a uri", edit("type: mock", `type: mock, uri: "http://x"`),
			[]string{`bad.yaml:8: apis[0].routes.$default.integration.uri: a mock integration has no uri`}},
		{"mock status out of range", edit("type: mock", `type: mock, response: {statusCode: 700}`),
			[]string{`bad.yaml:8: apis[0].routes.$default.integration.response.statusCode: want an HTTP status from 100 to 599, got 700`}},
		{"mock body unterminated", edit("type: mock", `type: mock, response: {body: "${context.x"}`),
			[]string{`bad.yaml:8: apis[0].routes.$default.integration.response.body: expression syntax error: unterminated ${`}},
		{"timeout over 1h", edit("type: mock", "type: mock, timeout: 2h"),
			[]string{"bad.yaml:8: apis[0].routes.$default.integration.timeout: want between 50ms and 1h, got 2h0m0s"}},
		{"timeout under 50ms", edit("type: mock", "type: mock, timeout: 10ms"),
			[]string{"bad.yaml:8: apis[0].routes.$default.integration.timeout: want between 50ms and 1h, got 10ms"}},
		{"duplicate stage", edit("    routes:", "      - name: dev\n    routes:"),
			[]string{`bad.yaml:6: apis[0].stages[1].name: stage "dev" is declared twice`}},
		{"bad stage name", edit("name: dev", "name: de v"),
			[]string{`bad.yaml:4: apis[0].stages[0].name: want 1 to 128 letters, digits, '-' or '_', got "de v"`}},
		{"@connections is not a stage", edit("name: dev", `name: "@connections"`),
			[]string{`bad.yaml:4: apis[0].stages[0].name: want 1 to 128 letters`}},
		{"no stages", edit("    stages:\n      - name: dev\n        variables: {backend: \"http://127.0.0.1:1\"}", "    stages: []"),
			[]string{"bad.yaml:3: apis[0].stages: at least one stage is required"}},
		{"custom route key starting with $", edit("$default:", "$custom:"),
			[]string{"bad.yaml:7: apis[0].routes.$custom: custom route keys must not start with '$'"}},
		{"route without integration", edit("$default:\n        integration: {type: mock}", "chat: {}"),
			[]string{`bad.yaml:7: apis[0].routes.chat.integration: route "chat" needs an integration`}},
		{"no routes", edit("    routes:\n      $default:\n        integration: {type: mock}", "    routes: {}"),
			[]string{"bad.yaml:6: apis[0].routes: at least one route is required"}},
		{"two APIs without listen", base + secondAPI,
			[]string{"bad.yaml:2: apis[0].listen: required when there are several APIs", "bad.yaml:9: apis[1].listen: required when there are several APIs"}},
		{"two APIs on one address", edit("name: a", "name: a\n    listen: 127.0.0.1:8080") + strings.Replace(secondAPI, "name: b", "name: b\n    listen: 127.0.0.1:8080", 1),
			[]string{"bad.yaml:11: apis[1].listen: 127.0.0.1:8080 is already used by apis[0].listen"}},
		{"wildcard and loopback on one port", edit("name: a", "name: a\n    listen: :8080") + strings.Replace(secondAPI, "name: b", "name: b\n    listen: 127.0.0.1:8080", 1),
			[]string{"bad.yaml:11: apis[1].listen: 127.0.0.1:8080 is already used by apis[0].listen"}},
		{"API on the management port", edit("name: a", "name: a\n    listen: 127.0.0.1:9090"),
			[]string{"bad.yaml:3: apis[0].listen: 127.0.0.1:9090 is already used by management.address"}},
		{"listen without port", edit("name: a", "name: a\n    listen: \"8080\""),
			[]string{`bad.yaml:3: apis[0].listen: want host:port such as "127.0.0.1:8080" or ":8080", got "8080"`}},
		{"listen port out of range", edit("name: a", "name: a\n    listen: \":80800\""),
			[]string{`bad.yaml:3: apis[0].listen: want a port number from 0 to 65535, got "80800"`}},
		{"duplicate API name", base + strings.Replace(secondAPI, "name: b", "name: a", 1),
			[]string{`bad.yaml:9: apis[1].name: apis[0] already has the name "a"`}},
		{"API without name", edit("name: a", "id: abc"),
			[]string{"bad.yaml:2: apis[0].name: an API needs a name"}},
		{"bad id", edit("name: a", "name: a\n    id: API_1"),
			[]string{`bad.yaml:3: apis[0].id: want 1 to 64 lowercase letters and digits, got "API_1"`}},
		{"frame over message", beforeStages("    limits: {maxFrameBytes: 2048, maxMessageBytes: 1024}"),
			[]string{"bad.yaml:3: apis[0].limits.maxFrameBytes: 2048 is over maxMessageBytes (1024)"}},
		{"frame over default message", beforeStages("    limits:\n      maxFrameBytes: 200000"),
			[]string{"bad.yaml:4: apis[0].limits.maxFrameBytes: 200000 is over maxMessageBytes (131072)"}},
		{"negative size", beforeStages("    limits: {maxMessageBytes: -1}"),
			[]string{"bad.yaml:3: apis[0].limits.maxMessageBytes: must be positive, got -1"}},
		{"negative duration", beforeStages("    limits:\n      pongTimeout: -1s"),
			[]string{"bad.yaml:4: apis[0].limits.pongTimeout: must not be negative, got -1s"}},
		{"binary frames", beforeStages("    binaryFrames: drop"),
			[]string{`bad.yaml:3: apis[0].binaryFrames: want "accept" or "reject", got "drop"`}},
		{"route selection on a header", beforeStages("    routeSelectionExpression: $request.header.x"),
			[]string{"bad.yaml:3: apis[0].routeSelectionExpression: expression syntax error: route selection can only use $request.body variables, not $request.header.x"}},
		{"route selection unterminated", beforeStages("    routeSelectionExpression: ${request.body.x"),
			[]string{"bad.yaml:3: apis[0].routeSelectionExpression: expression syntax error: unterminated ${ at offset 0"}},
		{"route selection blank", beforeStages(`    routeSelectionExpression: " "`),
			[]string{"bad.yaml:3: apis[0].routeSelectionExpression: must not be empty"}},
		// Throttling, usage plans and API keys.
		{"negative gateway rate", "throttling: {rateLimit: -1}\n" + base,
			[]string{"bad.yaml:1: throttling.rateLimit: must be a number of requests a second, 0 or more, got -1"}},
		{"unknown scope", "throttling: {scope: global}\n" + base,
			[]string{`bad.yaml:1: throttling.scope: want "local" or "cluster", got "global"`}},
		{"cluster scope without redis", "throttling: {scope: cluster}\n" + base,
			[]string{`bad.yaml:1: throttling.scope: cluster needs storage.type redis`}},
		{"burst 0 with a rate", edit("        variables:", "        defaultRouteSettings: {throttlingRateLimit: 5, throttlingBurstLimit: 0}\n        variables:"),
			[]string{"bad.yaml:5: apis[0].stages[0].defaultRouteSettings.throttlingBurstLimit: is 0 with throttlingRateLimit 5: no request could pass"}},
		{"negative route rate", edit("        variables:", "        routeSettings: {$default: {throttlingRateLimit: -3, throttlingBurstLimit: 1}}\n        variables:"),
			[]string{"bad.yaml:5: apis[0].stages[0].routeSettings.$default.throttlingRateLimit: must be a number of requests a second, 0 or more, got -3"}},
		{"route settings of an unknown route", edit("        variables:", "        routeSettings: {nope: {throttlingRateLimit: 1, throttlingBurstLimit: 1}}\n        variables:"),
			[]string{`bad.yaml:5: apis[0].stages[0].routeSettings.nope: the api has no route "nope"`}},
		{"message burst without rate", beforeStages("    limits: {messageBurstLimit: 3}"),
			[]string{"bad.yaml:3: apis[0].limits.messageRateLimit: is 0 with messageBurstLimit 3: the bucket would never refill"}},
		{"bad key selection", beforeStages("    apiKeySelectionExpression: $request.body.key"),
			[]string{`bad.yaml:3: apis[0].apiKeySelectionExpression: want $request.header.<name>, $request.querystring.<name> or $context.authorizer.usageIdentifierKey, got "$request.body.key"`}},
		{"plan on an unknown api", base + "usagePlans:\n  - name: p\n    apiStages: [{api: nope, stage: dev}]\n",
			[]string{`bad.yaml:11: usagePlans[0].apiStages[0].api: no api is named "nope"`}},
		{"plan on an unknown stage", base + "usagePlans:\n  - name: p\n    apiStages: [{api: a, stage: prod}]\n",
			[]string{`bad.yaml:11: usagePlans[0].apiStages[0].stage: api "a" has no stage "prod"`}},
		{"quota period", base + "usagePlans:\n  - name: p\n    quota: {limit: 5, period: YEAR}\n",
			[]string{`bad.yaml:11: usagePlans[0].quota.period: unknown period "YEAR" (want DAY, WEEK or MONTH)`}},
		{"plan burst 0", base + "usagePlans:\n  - name: p\n    throttle:\n      rateLimit: 5\n",
			[]string{"bad.yaml:11: usagePlans[0].throttle.burstLimit: is 0 with rateLimit 5"}},
		{"unknown usage plan", base + "apiKeys:\n  - {name: k, value: abcdefghij0123456789, usagePlans: [gold]}\n",
			[]string{`bad.yaml:10: apiKeys[0].usagePlans[0]: unknown usage plan "gold"`}},
		{"short api key", base + "apiKeys:\n  - name: k\n    value: tooShort123\n",
			[]string{"bad.yaml:11: apiKeys[0].value: want 20 to 128 letters and digits (AWS's rule), got 11 characters"}},
		{"api key with symbols", base + "apiKeys:\n  - name: k\n    value: abcdefghij-0123456789\n",
			[]string{"got 21 characters, some of them not letters or digits"}},
		{"key in two plans for one stage", base + "usagePlans:\n  - {name: p1, apiStages: [{api: a, stage: dev}]}\n  - {name: p2, apiStages: [{api: a, stage: dev}]}\napiKeys:\n  - {name: k, value: abcdefghij0123456789, usagePlans: [p1, p2]}\n",
			[]string{`bad.yaml:13: apiKeys[0].usagePlans[1]: usage plans "p1" and "p2" both cover api "a" stage "dev": a key may be in one plan per stage`}},
		{"api key from a missing variable", base + "apiKeys:\n  - name: k\n    value: ${PORTICO_TEST_UNSET_KEY}\n",
			[]string{"bad.yaml:11: apiKeys[0].value: the environment variable PORTICO_TEST_UNSET_KEY is not set"}},
		{"storage type", "storage: {type: etcd}\n" + base,
			[]string{`bad.yaml:1: storage.type: unknown storage type "etcd" (supported: memory, redis, dynamodb)`}},
		{"log level", "log:\n  level: verbose\n" + base,
			[]string{`bad.yaml:2: log.level: unknown level "verbose" (want debug, info, warn or error)`}},
		{"log format", "log: {format: xml}\n" + base,
			[]string{`bad.yaml:1: log.format: unknown format "xml" (want text or json)`}},
		{"management address", "management:\n  address: localhost\n" + base,
			[]string{`bad.yaml:2: management.address: want host:port`}},
		{"connections mode", "connections: {mode: threads}\n" + base,
			[]string{`bad.yaml:1: connections.mode: unknown mode "threads" (want "epoll" or "goroutine")`}},
		{"negative shards", "connections: {shards: -2}\n" + base,
			[]string{`bad.yaml:1: connections.shards: must not be negative, got -2`}},
		{"negative shutdown timeout", "shutdownTimeout: -5s\n" + base,
			[]string{`bad.yaml:1: shutdownTimeout: must not be negative, got -5s`}},
		{"short table name", "storage: {type: dynamodb, dynamodb: {table: x}}\n" + base,
			[]string{`bad.yaml:1: storage.dynamodb.table: "x" is not a DynamoDB table name (3 to 255 of a-z, A-Z, 0-9, _ . -)`}},
		{"gc ceiling below its floor", "gcPercent: 100\ngcPercentMax: 80\n" + base,
			[]string{`bad.yaml:2: gcPercentMax: want gcPercent (100, a fixed target) to 10000, got 80`}},
		{"negative keepalive", "listen: {tcpKeepAlive: -1s}\n" + base,
			[]string{`bad.yaml:1: listen.tcpKeepAlive: must not be negative (0s turns it off), got -1s`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant it to contain:\n%s", err, w)
				}
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			var p *Problem
			if !errors.As(err, &p) || p.File != "bad.yaml" || p.Line < 1 {
				t.Errorf("error is not a *Problem with file and line: %#v", p)
			}
		})
	}
}

// TestProblemsSortedByLine checks that every problem is reported, in the
// order of the file.
func TestProblemsSortedByLine(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		problems   int
	}{
		// Validation: problems found in another order than the file's.
		{"validate", "log: {level: loud}\n" + strings.Replace(edit("type: mock", "type: mok"), "name: dev", "name: d v", 1) + "storage: {type: disk}\n", 4},
		// Decoding: every unknown key, not only the first.
		{"decode", "lg: {}\n" + strings.Replace(beforeStages("    limts: {}"), "type: mock", "type: mock, uri2: x", 1), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			msgs := strings.Split(err.Error(), "\n")
			if len(msgs) != tc.problems {
				t.Fatalf("want %d problems, got %d:\n%v", tc.problems, len(msgs), err)
			}
			re := regexp.MustCompile(`^bad\.yaml:(\d+): `)
			last := 0
			for _, m := range msgs {
				g := re.FindStringSubmatch(m)
				if g == nil {
					t.Fatalf("problem without file:line: %q", m)
				}
				var n int
				for _, c := range g[1] {
					n = n*10 + int(c-'0')
				}
				if n < last {
					t.Errorf("not sorted by line:\n%v", err)
				}
				last = n
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	f, err := Parse("min.yaml", []byte(`apis:
  - name: echo
    stages: [{name: dev}]
    routes:
      $connect: {}
      $default: {integration: {type: mock}}
      post: {integration: {type: http, uri: "http://127.0.0.1:1/x", response: null}}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := f.APIs[0]
	mock := a.Routes["$default"].Integration
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"shutdownTimeout", f.ShutdownTimeout.D(), 30 * time.Second},
		{"gcPercent", f.GCPercent, 50},
		{"gcPercentMax", f.GCPercentMax, 400},
		{"management.address", f.Management.Address, "127.0.0.1:9090"},
		{"storage.type", f.Storage.Type, "memory"},
		{"log.level", f.Log.Level, "info"},
		{"log.format", f.Log.Format, "text"},
		{"connections.mode", f.Connections.Mode, ""},
		{"connections.sendQueueBytes", f.Connections.SendQueueBytes, 1 << 20},
		{"id", a.ID, "bewht2hybz"}, // base32 of sha256("echo")
		{"listen", a.Listen, ":8080"},
		{"routeSelectionExpression", a.RouteSelectionExpression, "$request.body.action"},
		{"binaryFrames", a.BinaryFrames, "accept"},
		{"maxMessageBytes", a.Limits.MaxMessageBytes, 131072},
		{"maxFrameBytes", a.Limits.MaxFrameBytes, 32768},
		{"idleTimeout", a.Limits.IdleTimeout.D(), 10 * time.Minute},
		{"maxConnectionDuration", a.Limits.MaxConnectionDuration.D(), 2 * time.Hour},
		{"pingInterval", a.Limits.PingInterval.D(), time.Duration(0)},
		{"pongTimeout", a.Limits.PongTimeout.D(), 30 * time.Second},
		{"handshakeTimeout", a.Limits.HandshakeTimeout.D(), 10 * time.Second},
		{"writeTimeout", a.Limits.WriteTimeout.D(), 10 * time.Second},
		{"mock timeout", mock.Timeout.D(), 29 * time.Second},
		{"mock status", mock.Response.StatusCode, 200},
		{"mock body", mock.Response.Body, ""},
		{"http timeout", a.Routes["post"].Integration.Timeout.D(), 29 * time.Second},
		{"http response", a.Routes["post"].Integration.Response == nil, true},
		{"$connect integration", a.Routes["$connect"].Integration == nil, true},
		{"path", f.Path(), "min.yaml"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestDerivedIDs(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z2-7]{10}$`)
	for _, name := range []string{"chat", "echo", "A name with spaces", "ünïcödé"} {
		id := deriveID(name)
		if !valid.MatchString(id) || deriveID(name) != id {
			t.Errorf("deriveID(%q) = %q", name, id)
		}
	}
	if deriveID("chat") == deriveID("chat2") {
		t.Error("two names give one ID")
	}
}

func TestSeveralAPIs(t *testing.T) {
	yml := edit("name: a", "name: a\n    listen: 127.0.0.1:8080") + strings.Replace(secondAPI, "name: b", "name: b\n    listen: 127.0.0.1:8081", 1)
	f, err := Parse("two.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	if f.APIs[0].ID == f.APIs[1].ID || f.APIs[1].Listen != "127.0.0.1:8081" {
		t.Errorf("APIs: %+v", f.APIs)
	}
}

// TestBuiltInCode checks ApplyDefaults and Validate on a File that was not
// read from YAML: problems have no file name or line.
func TestBuiltInCode(t *testing.T) {
	f := &File{APIs: []API{{
		Name:   "code",
		Stages: []Stage{{Name: "dev"}},
		Routes: map[string]Route{"$default": {Integration: &Integration{Type: "mock"}}},
	}}}
	f.ApplyDefaults()
	f.ApplyDefaults() // twice changes nothing
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := f.APIs[0].Routes["$default"].Integration; got.Timeout.D() != 29*time.Second || got.Response.StatusCode != 200 {
		t.Errorf("integration not defaulted: %+v", got)
	}
	f.APIs[0].Stages[0].Name = "bad name"
	err := f.Validate()
	if err == nil || err.Error() != `config: apis[0].stages[0].name: want 1 to 128 letters, digits, '-' or '_', got "bad name"` {
		t.Errorf("got %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(path)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("missing file: %v", err)
	}
	if errors.Is(err, ErrInvalid) {
		t.Errorf("a missing file is not an invalid configuration: %v", err)
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portico.yaml")
	if err := os.WriteFile(path, []byte(edit("type: mock", "type: mok")), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":8: apis[0].routes.$default.integration.type: ") {
		t.Errorf("got %v", err)
	}
}

// An API key's value may come from the environment, and a problem with
// it never repeats the secret.
func TestAPIKeyFromEnv(t *testing.T) {
	t.Setenv("PORTICO_TEST_KEY", "fromTheEnvironment0123")
	f, err := Parse("k.yaml", []byte(base+"apiKeys:\n  - {name: k, value: \"${PORTICO_TEST_KEY}\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.APIKeys[0].Value != "fromTheEnvironment0123" {
		t.Errorf("value %q", f.APIKeys[0].Value)
	}
	t.Setenv("PORTICO_TEST_KEY", "short-secret")
	_, err = Parse("k.yaml", []byte(base+"apiKeys:\n  - {name: k, value: \"${PORTICO_TEST_KEY}\"}\n"))
	if err == nil || strings.Contains(err.Error(), "short-secret") {
		t.Errorf("error %v: want a problem that does not show the value", err)
	}
}

// TestFullExample loads testdata/full.yaml, checks that it sets every key
// of the schema and that the values it shows are the defaults.
func TestFullExample(t *testing.T) {
	t.Setenv("PORTICO_SECRET", "example-secret")
	f, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatalf("full.yaml: %v", err)
	}
	for _, p := range schemaPaths(reflect.TypeFor[File](), "") {
		re := regexp.MustCompile("^" + strings.NewReplacer(`\[0\]`, `\[\d+\]`, `\.\*`, `(?:\.[^.]+|\["(?:[^"\\]|\\.)*"\])`).Replace(regexp.QuoteMeta(p)) + "$")
		found := false
		for k := range f.lines {
			found = found || re.MatchString(k)
		}
		if !found {
			t.Errorf("full.yaml does not show %s", p)
		}
	}

	var want File
	want.ApplyDefaults()
	want.Storage.Redis.Addrs = []string{"127.0.0.1:6379"} // values full.yaml sets without a default
	want.Management.Credentials = []Credential{{AccessKeyID: "AKIDPORTICO", SecretAccessKey: "example-secret",
		Allow: []Grant{{API: "chat", Stage: "prod", Routes: []string{"$connect"}, Actions: []string{"post", "get", "delete", "invoke"}}}}}
	if f.Throttling != want.Throttling {
		t.Errorf("throttling %+v, want the defaults %+v", f.Throttling, want.Throttling)
	}
	if f.ShutdownTimeout != want.ShutdownTimeout || !reflect.DeepEqual(f.Management, want.Management) || !reflect.DeepEqual(f.Storage, want.Storage) || f.Log != want.Log {
		t.Errorf("top-level values are not the defaults: %+v", f)
	}
	a := f.APIs[0]
	var limits Limits
	limits.applyDefaults()
	if a.Limits != limits {
		t.Errorf("limits %+v, want the defaults %+v", a.Limits, limits)
	}
	if a.RouteSelectionExpression != defaultRouteSelectionExpression || a.BinaryFrames != defaultBinaryFrames {
		t.Errorf("api values are not the defaults: %+v", a)
	}
	if a.Routes["ping"].Integration.Response.StatusCode != 200 || a.Routes["$default"].Integration.Response.StatusCode != 200 {
		t.Errorf("mock status not defaulted")
	}
	if a.Routes["sendmessage"].Integration.Timeout.D() != 29*time.Second {
		t.Errorf("integration timeout not defaulted")
	}
}

// schemaPaths lists the key paths of every field of t: list items as
// [0], keys of a map of mappings (routes) as *.
func schemaPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		fld := t.Field(i)
		name, _, _ := strings.Cut(fld.Tag.Get("yaml"), ",")
		if !fld.IsExported() || name == "" || name == "-" {
			continue
		}
		p := childPath(prefix, name)
		out = append(out, p)
		ft := fld.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct:
			out = append(out, schemaPaths(ft, p)...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, schemaPaths(ft.Elem(), p+"[0]")...)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
			out = append(out, schemaPaths(ft.Elem(), p+".*")...)
		}
	}
	return out
}

func TestPaths(t *testing.T) {
	for _, c := range []struct{ parent, key, want string }{
		{"", "apis", "apis"},
		{"apis[0]", "name", "apis[0].name"},
		{"apis[0].routes", "$default", "apis[0].routes.$default"},
		{"apis[0].routes", "chat.send", `apis[0].routes["chat.send"]`},
		{"apis[0].routes", `a"]b`, `apis[0].routes["a\"]b"]`},
		{"apis[0].routes", "", `apis[0].routes[""]`},
	} {
		got := childPath(c.parent, c.key)
		if got != c.want || parentPath(got) != c.parent {
			t.Errorf("childPath(%q, %q) = %q, parent %q", c.parent, c.key, got, parentPath(got))
		}
	}
	if got := parentPath(itemPath("apis", 3)); got != "apis" {
		t.Errorf("parent of apis[3] = %q", got)
	}
}

// TestExamplesLoad keeps the example configurations of the repository valid.
func TestExamplesLoad(t *testing.T) {
	t.Setenv("PORTICO_SECRET", "example-secret") // examples/docker signs with it
	paths, _ := filepath.Glob("../examples/*/portico.yaml")
	if len(paths) < 3 {
		t.Fatalf("found only %v: the examples have moved", paths)
	}
	for _, p := range paths {
		if filepath.Base(filepath.Dir(p)) == "tls" {
			continue // its certificates are made by make-certs.sh: TestTLSExampleLoads
		}
		if _, err := Load(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

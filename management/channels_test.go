package management

import (
	"strings"
	"testing"
)

func TestParseExtensionPath(t *testing.T) {
	for _, tc := range []struct {
		method, path, op, stage, id, name string
	}{
		{"GET", "/prod/@connections", "list", "prod", "", ""},
		{"POST", "/prod/@channels/room:1", "publish", "prod", "", "room:1"},
		{"GET", "/prod/@channels/a/b", "members", "prod", "", "a/b"},
		{"PUT", "/prod/@connections/Xa1=/channels/desk/3", "subscribe", "prod", "Xa1=", "desk/3"},
		{"DELETE", "/prod/@connections/Xa1=/channels/x", "unsubscribe", "prod", "Xa1=", "x"},
		{"POST", "/prod/@connections/Xa1=", "", "", "", ""},       // @connections POST
		{"DELETE", "/prod/@connections/Xa1=", "", "", "", ""},     // @connections DELETE
		{"PUT", "/prod/@channels/x", "", "", "", ""},              // no such method
		{"PUT", "/prod/@connections//channels/x", "", "", "", ""}, // no id
		{"GET", "//@connections", "", "", "", ""},                 // no stage
	} {
		op, stage, id, name, ok := parseExtensionPath(tc.method, tc.path)
		if op != tc.op || stage != tc.stage || id != tc.id || name != tc.name || ok != (tc.op != "") {
			t.Errorf("%s %s: %q %q %q %q %v", tc.method, tc.path, op, stage, id, name, ok)
		}
	}
}

// FuzzExtensionPath: any path either is left to @connections or names an
// operation whose parts are all in the path, with an id that holds no '/'.
func FuzzExtensionPath(f *testing.F) {
	for _, s := range []string{"/prod/@channels/room:1", "/p/@connections/id/channels/a/b", "/p/@connections", "/", "//@channels/"} {
		f.Add("PUT", s)
		f.Add("POST", s)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		op, stage, id, name, ok := parseExtensionPath(method, path)
		if !ok {
			return
		}
		if stage == "" || strings.Contains(stage, "/") || strings.Contains(id, "/") || !strings.Contains(path, stage) || !strings.HasSuffix(path, name) {
			t.Fatalf("%s %q: op %q stage %q id %q name %q", method, path, op, stage, id, name)
		}
		if (op == "subscribe" || op == "unsubscribe") != (id != "") {
			t.Fatalf("%s %q: op %q with id %q", method, path, op, id)
		}
	})
}

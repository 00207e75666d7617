package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConsoleErrors(t *testing.T) {
	t.Setenv("PORTICO_TEST_SHORT", "short-tok")
	os.Unsetenv("PORTICO_TEST_UNSET")
	iam := "  auth: iam\n  credentials:\n    - {accessKeyId: AK, secretAccessKey: x}\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"iam without a token", mgmt(iam + "  console:\n    enabled: true"),
			`bad.yaml:5: management.console.token: the console needs a token when management.auth is iam`},
		{"short token", mgmt("  console:\n    enabled: true\n    token: ${PORTICO_TEST_SHORT}"),
			`bad.yaml:4: management.console.token: the console token must be at least 16 characters, got 9`},
		{"unset variable", mgmt("  console: {enabled: true, token: \"${PORTICO_TEST_UNSET}\"}"),
			`bad.yaml:2: management.console.token: the environment variable PORTICO_TEST_UNSET is not set`},
		{"token and tokenFile", mgmt("  console: {token: aaaaaaaaaaaaaaaaaaaa, tokenFile: t.txt}"),
			`bad.yaml:2: management.console.tokenFile: give token or tokenFile, not both`},
		{"missing tokenFile", mgmt("  console: {enabled: true, tokenFile: /nonexistent/token}"),
			`bad.yaml:2: management.console.tokenFile: open /nonexistent/token: no such file or directory`},
		{"unknown key", mgmt("  console: {enable: true}"),
			`bad.yaml:2: management.console.enable: unknown key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
			if strings.Contains(err.Error(), "short-tok") {
				t.Errorf("the error holds the token: %v", err)
			}
		})
	}
}

func TestConsoleToken(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("  from-a-file-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "portico.yaml")
	yml := mgmt("  auth: iam\n  credentials:\n    - {accessKeyId: AK, secretAccessKey: x}\n  console: {enabled: true, tokenFile: token}")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Management.Console.Token.Value(); got != "from-a-file-0123456789" {
		t.Errorf("token from the file %q", got)
	}

	t.Setenv("PORTICO_TEST_CONSOLE", "from-the-environment")
	f, err = Parse("ok.yaml", []byte(mgmt("  console: {enabled: true, token: \"${PORTICO_TEST_CONSOLE}\"}")))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Management.Console.Token.Value(); got != "from-the-environment" {
		t.Errorf("token from the environment %q", got)
	}
	// With auth none the token is optional (the listener is loopback only).
	if _, err := Parse("ok.yaml", []byte(mgmt("  console: {enabled: true}"))); err != nil {
		t.Errorf("console without a token on loopback: %v", err)
	}
}

package config

import (
	"os"
	"path/filepath"
	"strings"
)

// Console configures the admin console, a web page on the management
// listener at /console: live connections and messages per second, route
// rates and errors, each API's route table, connection lookup with send
// and disconnect, and the nodes of the cluster.
//
// The page itself holds no data; everything it shows comes from
// /console/api/..., which needs the console token (header
// X-Portico-Console-Token) when one is set. A browser cannot sign
// requests with SigV4, so with management.auth iam the token is
// required; with auth none (a loopback listener) it is optional, and
// without one the console answers only requests whose Host is a loopback
// address (against DNS rebinding).
type Console struct {
	// Enabled serves the console. Default false: /console is 404.
	Enabled bool `yaml:"enabled"`
	// Token is the secret the browser sends; write it as ${ENV_VAR} to
	// keep it out of the file. At least 16 characters. Never logged.
	// Default "": none (then tokenFile, or no token at all with auth none).
	Token Secret `yaml:"token"`
	// TokenFile is a file whose content (surrounding whitespace trimmed)
	// is the token, read at start; relative to the configuration file's
	// directory. Default "": none. Not together with token.
	TokenFile string `yaml:"tokenFile"`
}

// minConsoleToken is the shortest console token accepted.
const minConsoleToken = 16

// resolveConsole substitutes ${ENV} in management.console.token and reads
// management.console.tokenFile into Token. Parse calls it before
// ApplyDefaults.
func (f *File) resolveConsole() []*Problem {
	v := &validator{f: f}
	c := &f.Management.Console
	s, missing := expandEnv(string(c.Token))
	c.Token = Secret(s)
	v.missingEnv("management.console.token", missing)
	if c.TokenFile == "" {
		return v.probs
	}
	if c.Token != "" {
		v.add("management.console.tokenFile", "give token or tokenFile, not both")
		return v.probs
	}
	path, missing := expandEnv(c.TokenFile)
	v.missingEnv("management.console.tokenFile", missing)
	if len(missing) > 0 {
		return v.probs
	}
	if !filepath.IsAbs(path) && f.path != "" {
		path = filepath.Join(filepath.Dir(f.path), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		v.add("management.console.tokenFile", "%v", err)
		return v.probs
	}
	c.Token = Secret(strings.TrimSpace(string(data)))
	return v.probs
}

// console checks management.console: a token long enough, and one at all
// when the listener authenticates with iam.
func (v *validator) console() {
	m := &v.f.Management
	c := &m.Console
	key := "management.console.token"
	if c.TokenFile != "" {
		key = "management.console.tokenFile"
	}
	switch {
	case c.Token != "" && len(c.Token) < minConsoleToken:
		// The length is not secret; the value is never repeated.
		v.add(key, "the console token must be at least %d characters, got %d", minConsoleToken, len(c.Token))
	case c.Enabled && c.Token == "" && m.Auth == "iam":
		v.add(key, "the console needs a token when management.auth is iam (a browser cannot sign with SigV4); write token: ${PORTICO_CONSOLE_TOKEN}")
	}
}

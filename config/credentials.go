package config

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	"go.yaml.in/yaml/v3"
)

// The management listener's credentials: ${ENV} substitution, the
// credentials file, and their checks.

// envRE matches ${NAME}; nothing else is substituted ($NAME, ${a-b} and
// $${X} stay as written).
var envRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces every ${NAME} in s with the variable's value and
// returns the names that are not set.
func expandEnv(s string) (string, []string) {
	var missing []string
	out := envRE.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := os.LookupEnv(name)
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	return out, missing
}

// credentialsFile is a credentials file as read: its credentials, and
// where each key is, for problems reported against it.
type credentialsFile struct {
	Credentials []Credential `yaml:"credentials"`
}

// ManagementCredentials returns every credential of the management
// listener: those in the file, then those of credentialsFile.
func (f *File) ManagementCredentials() []Credential {
	out := slices.Clone(f.Management.Credentials)
	if f.credFile != nil {
		out = append(out, f.credFile.Management.Credentials...)
	}
	return out
}

// resolveCredentials substitutes ${ENV} in the credentials and reads
// management.credentialsFile. Parse calls it before ApplyDefaults.
func (f *File) resolveCredentials() []*Problem {
	v := &validator{f: f}
	v.expandCredentials("management.credentials", f.Management.Credentials)
	if f.Management.CredentialsFile == "" {
		return v.probs
	}
	path, missing := expandEnv(f.Management.CredentialsFile)
	for _, name := range missing {
		v.add("management.credentialsFile", "the environment variable %s is not set", name)
	}
	if len(missing) > 0 {
		return v.probs
	}
	if !filepath.IsAbs(path) && f.path != "" {
		path = filepath.Join(filepath.Dir(f.path), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		v.add("management.credentialsFile", "%v", err)
		return v.probs
	}
	cf, probs := parseCredentialsFile(path, data)
	if len(probs) > 0 {
		return append(v.probs, probs...)
	}
	fv := &validator{f: cf}
	fv.expandCredentials("credentials", cf.Management.Credentials)
	f.credFile = cf
	return append(v.probs, fv.probs...)
}

// parseCredentialsFile decodes a credentials file into a File that holds
// only its credentials, its name and its lines.
func parseCredentialsFile(name string, data []byte) (*File, []*Problem) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, []*Problem{syntaxProblem(name, err)}
	}
	idx := newIndex(&root)
	var doc credentialsFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, decodeProblems(name, err, idx)
	}
	cf := &File{path: name, lines: idx.lines}
	cf.Management.Credentials = doc.Credentials
	if len(doc.Credentials) == 0 {
		return nil, []*Problem{{File: name, Line: 1, Key: "credentials", Reason: "the file holds no credentials (want credentials: [{accessKeyId: ..., secretAccessKey: ...}])"}}
	}
	return cf, nil
}

// expandCredentials substitutes ${ENV} in each credential's fields. A
// problem names the key and the variable, never the value.
func (v *validator) expandCredentials(key string, creds []Credential) {
	for i := range creds {
		c := &creds[i]
		ck := itemPath(key, i)
		var missing []string
		c.AccessKeyID, missing = expandEnv(c.AccessKeyID)
		v.missingEnv(ck+".accessKeyId", missing)
		s, missing := expandEnv(string(c.SecretAccessKey))
		c.SecretAccessKey = Secret(s)
		v.missingEnv(ck+".secretAccessKey", missing)
		s, missing = expandEnv(string(c.SessionToken))
		c.SessionToken = Secret(s)
		v.missingEnv(ck+".sessionToken", missing)
	}
}

func (v *validator) missingEnv(key string, names []string) {
	for _, name := range names {
		v.add(key, "the environment variable %s is not set", name)
	}
}

var (
	accessKeyIDRE = regexp.MustCompile(`^[A-Za-z0-9_.+@-]{1,128}$`)
	grantActions  = []string{"post", "get", "delete", "invoke", "admin"}
)

// management checks the management section: auth, region, metricsAuth,
// and the credentials of the file and of credentialsFile.
func (v *validator) management() {
	m := &v.f.Management
	authOK := m.Auth == "none" || m.Auth == "iam"
	if !authOK {
		v.add("management.auth", "unknown auth %q (want \"iam\" or \"none\")", m.Auth)
	}
	switch {
	case m.MetricsAuth != "none" && m.MetricsAuth != "iam":
		v.add("management.metricsAuth", "unknown metricsAuth %q (want \"iam\" or \"none\")", m.MetricsAuth)
	case m.MetricsAuth == "iam" && m.Auth == "none":
		v.add("management.metricsAuth", "metricsAuth iam needs auth: iam (the keys are management.credentials)")
	}
	if !regionRE.MatchString(m.Region) {
		v.add("management.region", "want an AWS region name such as \"us-east-1\", got %q", m.Region)
	}
	if m.Auth == "none" && checkAddress(m.Address) == "" && !loopback(m.Address) {
		v.add("management.address", "%q is not a loopback address and management.auth is none: anyone who reaches it could post to, read and close every connection; set management.auth: iam with credentials, or listen on 127.0.0.1", m.Address)
	}
	all := v.f.ManagementCredentials()
	if m.Auth == "iam" && len(all) == 0 {
		v.add("management.credentials", "management.auth iam needs at least one credential (management.credentials or management.credentialsFile)")
	}
	seen := map[string]string{}
	v.credentials("management.credentials", m.Credentials, seen)
	if cf := v.f.credFile; cf != nil {
		fv := &validator{f: cf}
		fv.apis = v.f.APIs
		fv.credentials("credentials", cf.Management.Credentials, seen)
		v.probs = append(v.probs, fv.probs...)
	}
}

// credentials checks credentials; seen maps access key ids to where they
// were first given.
func (v *validator) credentials(key string, creds []Credential, seen map[string]string) {
	apis := v.apis
	if apis == nil {
		apis = v.f.APIs
	}
	for i, c := range creds {
		ck := itemPath(key, i)
		switch first, dup := seen[c.AccessKeyID]; {
		case c.AccessKeyID == "":
			v.add(ck+".accessKeyId", "required")
		case !accessKeyIDRE.MatchString(c.AccessKeyID):
			v.add(ck+".accessKeyId", "want 1 to 128 of A-Z a-z 0-9 _ . + @ -, got %q", c.AccessKeyID)
		case dup:
			v.add(ck+".accessKeyId", "access key %q is already given by %s", c.AccessKeyID, first)
		default:
			where := ck
			if v.f.path != "" {
				where = v.f.path + " " + ck
			}
			seen[c.AccessKeyID] = where
		}
		if c.SecretAccessKey == "" {
			v.add(ck+".secretAccessKey", "required (write it as ${ENV_VAR} to keep it out of the file)")
		}
		for j, g := range c.Allow {
			v.grant(itemPath(ck+".allow", j), g, apis)
		}
	}
}

// grant checks that a grant names APIs, stages, routes and actions that exist.
func (v *validator) grant(key string, g Grant, apis []API) {
	var api *API
	if g.API != "" {
		for i := range apis {
			if apis[i].Name == g.API {
				api = &apis[i]
			}
		}
		if api == nil {
			v.add(key+".api", "no API is named %q", g.API)
			return
		}
	}
	if g.Stage != "" {
		found := false
		for _, a := range apis {
			if api != nil && a.Name != api.Name {
				continue
			}
			for _, st := range a.Stages {
				found = found || st.Name == g.Stage
			}
		}
		if !found {
			v.add(key+".stage", "no stage %q%s", g.Stage, map[bool]string{true: " in API " + g.API, false: " in any API"}[api != nil])
		}
	}
	for _, a := range g.Actions {
		if !slices.Contains(grantActions, a) {
			v.add(key+".actions", "unknown action %q (want post, get, delete, invoke or admin)", a)
		}
	}
	if api != nil {
		for _, r := range g.Routes {
			if _, ok := api.Routes[r]; !ok {
				v.add(key+".routes", "API %q has no route %q", g.API, r)
			}
		}
	}
}

// loopback reports whether a host:port listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

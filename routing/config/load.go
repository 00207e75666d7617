package config

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portico-gateway/portico/routing/expr"
)

// ErrInvalid is wrapped by every error about the content of a file.
var ErrInvalid = errors.New("invalid configuration")

// Problem is one thing wrong with a file: where, which key, and why.
type Problem struct {
	File   string
	Line   int
	Key    string
	Reason string
}

func (p *Problem) Error() string {
	return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Key, p.Reason)
}

func (p *Problem) Unwrap() error { return ErrInvalid }

// Load reads, decodes, defaults and validates the file at path.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	return Parse(path, data)
}

// Parse does what Load does for data; name is used in error messages.
func Parse(name string, data []byte) (*File, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Problem{File: name, Line: yamlErrLine(err), Key: "(file)", Reason: err.Error()}
	}
	lines := map[string]int{}
	if len(root.Content) > 0 {
		index(root.Content[0], "", lines)
	}
	f := &File{path: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil && !errors.Is(err, io.EOF) {
		return nil, decodeProblems(name, err, &root)
	}
	f.path = name
	f.lines = lines
	f.ApplyDefaults()
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return f, nil
}

var lineRE = regexp.MustCompile(`line (\d+)`)

func yamlErrLine(err error) int {
	if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 1
}

// index records the line of every key path (apis[0].routes.echo.integration).
func index(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			lines[p] = k.Line
			index(v, p, lines)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = item.Line
			index(item, p, lines)
		}
	case yaml.DocumentNode:
		for _, c := range n.Content {
			index(c, path, lines)
		}
	}
}

// decodeProblems turns yaml.v3's type errors ("line 7: field limts not
// found in type config.API") into Problems naming the key path.
func decodeProblems(name string, err error, root *yaml.Node) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return &Problem{File: name, Line: yamlErrLine(err), Key: "(file)", Reason: err.Error()}
	}
	byLine := map[int]string{}
	if len(root.Content) > 0 {
		lines := map[string]int{}
		index(root.Content[0], "", lines)
		for k, l := range lines {
			if cur, ok := byLine[l]; !ok || len(k) > len(cur) {
				byLine[l] = k
			}
		}
	}
	var errs []error
	for _, msg := range te.Errors {
		line := yamlErrLine(errors.New(msg))
		key := byLine[line]
		reason := strings.TrimSpace(lineRE.ReplaceAllString(msg, ""))
		reason = strings.TrimPrefix(reason, ": ")
		if strings.HasPrefix(reason, "field ") && strings.Contains(reason, " not found in type ") {
			reason = "unknown key"
		}
		errs = append(errs, &Problem{File: name, Line: line, Key: key, Reason: reason})
	}
	return errors.Join(errs...)
}

// ApplyDefaults fills every zero field with its documented default.
func (f *File) ApplyDefaults() {
	if f.ShutdownTimeout == 0 {
		f.ShutdownTimeout = Duration(30 * time.Second)
	}
	if f.Management.Address == "" {
		f.Management.Address = "127.0.0.1:9090"
	}
	if f.Storage.Type == "" {
		f.Storage.Type = "memory"
	}
	if f.Log.Level == "" {
		f.Log.Level = "info"
	}
	if f.Log.Format == "" {
		f.Log.Format = "text"
	}
	for i := range f.APIs {
		a := &f.APIs[i]
		if a.ID == "" && a.Name != "" {
			a.ID = deriveID(a.Name)
		}
		if a.Listen == "" && len(f.APIs) == 1 {
			a.Listen = ":8080"
		}
		if a.RouteSelectionExpression == "" {
			a.RouteSelectionExpression = "$request.body.action"
		}
		if a.BinaryFrames == "" {
			a.BinaryFrames = "accept"
		}
		l := &a.Limits
		defInt(&l.MaxMessageBytes, 128<<10)
		defInt(&l.MaxFrameBytes, 32<<10)
		defDur(&l.IdleTimeout, 10*time.Minute)
		defDur(&l.MaxConnectionDuration, 2*time.Hour)
		defDur(&l.PongTimeout, 30*time.Second)
		defDur(&l.HandshakeTimeout, 10*time.Second)
		defDur(&l.WriteTimeout, 10*time.Second)
		for k, r := range a.Routes {
			if r.Integration == nil {
				continue
			}
			defDur(&r.Integration.Timeout, 29*time.Second)
			if r.Integration.Type == "mock" && r.Integration.Response == nil {
				r.Integration.Response = &MockResponse{}
			}
			if r.Integration.Response != nil && r.Integration.Response.StatusCode == 0 {
				r.Integration.Response.StatusCode = 200
			}
			a.Routes[k] = r
		}
	}
}

func defInt(v *int, d int) {
	if *v == 0 {
		*v = d
	}
}

func defDur(v *Duration, d time.Duration) {
	if *v == 0 {
		*v = Duration(d)
	}
}

// deriveID makes a stable 10-character apiId from a name.
func deriveID(name string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	sum := sha256.Sum256([]byte(name))
	id := make([]byte, 10)
	for i := range id {
		id[i] = alphabet[int(sum[i])%len(alphabet)]
	}
	return string(id)
}

var (
	stageNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	apiIDRE     = regexp.MustCompile(`^[a-z0-9]{1,64}$`)
)

// validator collects problems with their lines.
type validator struct {
	f     *File
	probs []*Problem
}

func (v *validator) add(key, format string, args ...any) {
	line := 0
	for k := key; k != ""; k = parentKey(k) {
		if l, ok := v.f.lines[k]; ok {
			line = l
			break
		}
	}
	if line == 0 {
		line = 1
	}
	v.probs = append(v.probs, &Problem{File: v.f.path, Line: line, Key: key, Reason: fmt.Sprintf(format, args...)})
}

func parentKey(k string) string {
	i := strings.LastIndexAny(k, ".[")
	if i < 0 {
		return ""
	}
	return k[:i]
}

// Validate checks a defaulted file and reports every problem found.
func (f *File) Validate() error {
	v := &validator{f: f}
	if f.lines == nil {
		f.lines = map[string]int{}
	}
	switch f.Storage.Type {
	case "memory":
	default:
		v.add("storage.type", "unknown storage type %q (want \"memory\")", f.Storage.Type)
	}
	switch f.Connections.Mode {
	case "", "epoll", "goroutine":
	default:
		v.add("connections.mode", "unknown mode %q (want \"epoll\" or \"goroutine\")", f.Connections.Mode)
	}
	if f.Connections.Shards < 0 || f.Connections.SendQueueBytes < 0 {
		v.add("connections", "shards and sendQueueBytes must not be negative")
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, f.Log.Level) {
		v.add("log.level", "unknown level %q (want debug, info, warn or error)", f.Log.Level)
	}
	if f.Log.Format != "text" && f.Log.Format != "json" {
		v.add("log.format", "unknown format %q (want text or json)", f.Log.Format)
	}
	if _, _, err := net.SplitHostPort(f.Management.Address); err != nil {
		v.add("management.address", "want host:port: %v", err)
	}
	if f.ShutdownTimeout < 0 {
		v.add("shutdownTimeout", "must not be negative")
	}
	if len(f.APIs) == 0 {
		v.add("apis", "at least one API is required")
	}
	names, listens := map[string]bool{}, map[string]bool{}
	for i := range f.APIs {
		v.api(fmt.Sprintf("apis[%d]", i), &f.APIs[i], names, listens)
	}
	if len(v.probs) == 0 {
		return nil
	}
	sort.SliceStable(v.probs, func(i, j int) bool { return v.probs[i].Line < v.probs[j].Line })
	errs := make([]error, len(v.probs))
	for i, p := range v.probs {
		errs[i] = p
	}
	return errors.Join(errs...)
}

func (v *validator) api(key string, a *API, names, listens map[string]bool) {
	switch {
	case a.Name == "":
		v.add(key+".name", "an API needs a name")
	case names[a.Name]:
		v.add(key+".name", "another API is already named %q", a.Name)
	}
	names[a.Name] = true
	if !apiIDRE.MatchString(a.ID) {
		v.add(key+".id", "want 1 to 64 lowercase letters and digits, got %q", a.ID)
	}
	switch {
	case a.Listen == "":
		v.add(key+".listen", "with several APIs each needs its own listen address")
	case listens[a.Listen]:
		v.add(key+".listen", "another API already listens on %s", a.Listen)
	default:
		if _, _, err := net.SplitHostPort(a.Listen); err != nil {
			v.add(key+".listen", "want host:port: %v", err)
		}
	}
	listens[a.Listen] = true
	if a.BinaryFrames != "accept" && a.BinaryFrames != "reject" {
		v.add(key+".binaryFrames", "want \"accept\" or \"reject\", got %q", a.BinaryFrames)
	}
	if t, err := expr.Compile(a.RouteSelectionExpression); err != nil {
		v.add(key+".routeSelectionExpression", "%v", err)
	} else if err := expr.ValidateRouteSelection(t); err != nil {
		v.add(key+".routeSelectionExpression", "%v", err)
	}
	v.limits(key+".limits", &a.Limits)
	if len(a.Stages) == 0 {
		v.add(key+".stages", "at least one stage is required")
	}
	stages := map[string]bool{}
	for i, st := range a.Stages {
		sk := fmt.Sprintf("%s.stages[%d]", key, i)
		switch {
		case !stageNameRE.MatchString(st.Name):
			v.add(sk+".name", "want 1 to 128 letters, digits, '-' or '_', got %q", st.Name)
		case stages[st.Name]:
			v.add(sk+".name", "stage %q is declared twice", st.Name)
		}
		stages[st.Name] = true
	}
	if len(a.Routes) == 0 {
		v.add(key+".routes", "at least one route is required")
	}
	keys := make([]string, 0, len(a.Routes))
	for k := range a.Routes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, rk := range keys {
		v.route(key+".routes."+rk, rk, a.Routes[rk], a.Stages)
	}
}

func (v *validator) limits(key string, l *Limits) {
	if l.MaxFrameBytes < 0 || l.MaxMessageBytes < 0 {
		v.add(key, "sizes must be positive")
	}
	if l.MaxFrameBytes > l.MaxMessageBytes {
		v.add(key+".maxFrameBytes", "%d is over maxMessageBytes (%d)", l.MaxFrameBytes, l.MaxMessageBytes)
	}
	for name, d := range map[string]Duration{
		"idleTimeout": l.IdleTimeout, "maxConnectionDuration": l.MaxConnectionDuration,
		"pingInterval": l.PingInterval, "pongTimeout": l.PongTimeout,
		"handshakeTimeout": l.HandshakeTimeout, "writeTimeout": l.WriteTimeout,
	} {
		if d < 0 {
			v.add(key+"."+name, "must not be negative")
		}
	}
}

func (v *validator) route(key, rk string, r Route, stages []Stage) {
	reserved := rk == "$connect" || rk == "$disconnect" || rk == "$default"
	if strings.HasPrefix(rk, "$") && !reserved {
		v.add(key, "custom route keys must not start with '$' (reserved: $connect, $disconnect, $default)")
	}
	if rk == "" {
		v.add(key, "empty route key")
	}
	ic := r.Integration
	if ic == nil {
		if rk != "$connect" && rk != "$disconnect" {
			v.add(key+".integration", "route %q needs an integration", rk)
		}
		return
	}
	ik := key + ".integration"
	if ic.Timeout.D() < 50*time.Millisecond || ic.Timeout.D() > time.Hour {
		v.add(ik+".timeout", "want between 50ms and 1h, got %s", ic.Timeout.D())
	}
	switch ic.Type {
	case "http":
		v.httpURI(ik+".uri", ic.URI, stages)
		if ic.Response != nil {
			v.add(ik+".response", "only mock integrations have a response")
		}
	case "mock":
		if ic.URI != "" {
			v.add(ik+".uri", "a mock integration has no uri")
		}
		if ic.Response != nil {
			if c := ic.Response.StatusCode; c < 100 || c > 599 {
				v.add(ik+".response.statusCode", "want an HTTP status 100-599, got %d", c)
			}
			if _, err := expr.Compile(ic.Response.Body); err != nil {
				v.add(ik+".response.body", "%v", err)
			}
		}
	default:
		v.add(ik+".type", "unknown integration type %q (want \"http\" or \"mock\")", ic.Type)
	}
}

// httpURI checks an integration URI: only stage variables may be used,
// each must exist in every stage, and the result must be an http(s) URL.
func (v *validator) httpURI(key, uri string, stages []Stage) {
	if uri == "" {
		v.add(key, "an http integration needs a uri")
		return
	}
	t, err := expr.Compile(uri)
	if err != nil {
		v.add(key, "%v", err)
		return
	}
	for _, name := range t.Vars() {
		sv, ok := strings.CutPrefix(name, "stageVariables.")
		if !ok {
			v.add(key, "only ${stageVariables.x} may be used in a uri, not $%s", name)
			return
		}
		for _, st := range stages {
			if _, ok := st.Variables[sv]; !ok {
				v.add(key, "stage %q has no variable %q", st.Name, sv)
			}
		}
	}
	for _, st := range stages {
		vars := expr.Map{}
		for k, val := range st.Variables {
			vars["stageVariables."+k] = val
		}
		u := t.Eval(nil, vars)
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			v.add(key, "in stage %q the uri is %q: want an http:// or https:// URL", st.Name, u)
			return
		}
	}
}

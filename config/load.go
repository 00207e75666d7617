package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrInvalid is wrapped by every error about the content of a file, so
// callers can tell "the file is wrong" (errors.Is(err, ErrInvalid)) from
// "the file could not be read".
var ErrInvalid = errors.New("invalid configuration")

// Problem is one thing wrong with a configuration: in which file, on which
// line, under which key, and why. Its text is "file:line: key: reason",
// e.g. "portico.yaml:14: apis[0].routes.echo.integration.type: unknown
// integration type "mok" (want "http" or "mock")".
type Problem struct {
	// File is the name given to Parse (the path for Load).
	File string
	// Line is 1-based; 0 when the configuration was built in code.
	Line int
	// Key is the key path: apis[0].stages[1].name, management.address.
	Key string
	// Reason says what is wrong and, when it helps, what is wanted.
	Reason string
}

func (p *Problem) Error() string {
	file := p.File
	if file == "" {
		file = "config"
	}
	if p.Line > 0 {
		file += ":" + strconv.Itoa(p.Line)
	}
	return fmt.Sprintf("%s: %s: %s", file, p.Key, p.Reason)
}

// Unwrap makes every Problem match errors.Is(err, ErrInvalid).
func (p *Problem) Unwrap() error { return ErrInvalid }

// joinProblems sorts problems by line (keeping the order of problems on
// the same line) and joins them into one error, nil when there are none.
func joinProblems(probs []*Problem) error {
	if len(probs) == 0 {
		return nil
	}
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
	errs := make([]error, len(probs))
	for i, p := range probs {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// Load reads, decodes, defaults and validates the file at path.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		// The *os.PathError names the path: "open portico.yaml: no such
		// file or directory".
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	return Parse(path, data)
}

// Parse does the same as Load for data; name is used in error messages.
//
// It works in two passes over the YAML. The first parses it into a tree of
// yaml.Nodes, only to learn on which line every key is. The second decodes
// it into a File, refusing unknown keys. Problems of either pass, and then
// of Validate, are reported as "name:line: key: reason".
func Parse(name string, data []byte) (*File, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, joinProblems([]*Problem{syntaxProblem(name, err)})
	}
	idx := newIndex(&root)

	f := &File{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil && !errors.Is(err, io.EOF) {
		return nil, joinProblems(decodeProblems(name, err, idx))
	}
	// A second document ("---" then more YAML) would be silently ignored.
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		line := extra.Line
		if len(extra.Content) > 0 {
			line = extra.Content[0].Line
		}
		return nil, joinProblems([]*Problem{{File: name, Line: max(line, 1), Key: rootKey,
			Reason: "a second YAML document: the file must hold exactly one"}})
	} else if !errors.Is(err, io.EOF) {
		return nil, joinProblems([]*Problem{syntaxProblem(name, err)})
	}

	f.path = name
	f.lines = idx.lines
	probs := append(append(f.resolveCredentials(), f.expandSecrets()...), f.resolveConsole()...)
	if len(probs) > 0 {
		return nil, joinProblems(probs)
	}
	f.resolveTLSPaths()
	f.ApplyDefaults()
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return f, nil
}

// rootKey names the document itself in problems that concern no key.
const rootKey = "(top level)"

// lineRE finds the line number yaml.v3 puts in its messages.
var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// splitLine splits "yaml: line 3: reason" into 3 and "reason"; line is 0
// when the message has none.
func splitLine(msg string) (int, string) {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return 0, strings.TrimPrefix(msg, "yaml: ")
	}
	n, _ := strconv.Atoi(m[1])
	return n, msg[len(m[0]):]
}

// syntaxProblem reports YAML that cannot be parsed at all (bad indentation,
// an unclosed bracket, a tab).
func syntaxProblem(name string, err error) *Problem {
	line, reason := splitLine(err.Error())
	return &Problem{File: name, Line: max(line, 1), Key: "(syntax)", Reason: reason}
}

// entry is one key of the file (or one item of a list).
type entry struct {
	path  string     // key path: apis[0].routes.echo
	key   string     // the key as written: echo (empty for list items)
	line  int        // line of the key (of the item for list items)
	value *yaml.Node // what the key holds
}

// index knows where every key of a file is.
type index struct {
	entries []entry
	lines   map[string]int // path -> line
}

func newIndex(root *yaml.Node) *index {
	idx := &index{lines: map[string]int{}}
	idx.walk(root, "")
	return idx
}

func (idx *index) add(e entry) {
	idx.entries = append(idx.entries, e)
	if _, dup := idx.lines[e.path]; !dup {
		idx.lines[e.path] = e.line
	}
}

// walk records the keys under n, whose own path is path. Aliases are not
// followed: a key reached through one reports the line of the alias.
func (idx *index) walk(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			idx.walk(c, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := childPath(path, k.Value)
			idx.add(entry{path: p, key: k.Value, line: k.Line, value: v})
			idx.walk(v, p)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := itemPath(path, i)
			idx.add(entry{path: p, line: item.Line, value: item})
			idx.walk(item, p)
		}
	}
}

// childPath is the path of key under parent: "apis[0]" + "name" gives
// "apis[0].name". A key that would make the path ambiguous (a route key
// with a dot, say) is quoted: apis[0].routes["chat.send"].
func childPath(parent, key string) string {
	if key == "" || strings.ContainsAny(key, ".[]\"' \t\n\r") {
		return parent + "[" + strconv.Quote(key) + "]"
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// itemPath is the path of the i-th item of the list at parent.
func itemPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// parentPath undoes childPath and itemPath: apis[0].name -> apis[0] ->
// apis -> "".
func parentPath(p string) string {
	switch {
	case strings.HasSuffix(p, `"]`):
		// strconv.Quote escapes every '"' inside, so the last `["` opens
		// the quoted segment.
		return p[:strings.LastIndex(p, `["`)]
	case strings.HasSuffix(p, "]"):
		return p[:strings.LastIndex(p, "[")]
	}
	if i := strings.LastIndex(p, "."); i >= 0 {
		return p[:i]
	}
	return ""
}

// yaml.v3 decoding messages, without their "line N: " prefix.
var (
	unknownFieldRE = regexp.MustCompile(`^field (.+) not found in type \S+$`)
	duplicateKeyRE = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	cannotRE       = regexp.MustCompile("^cannot unmarshal (\\S+)(?: `(.*)`)? into (.+)$")
	gotQuotedRE    = regexp.MustCompile(`got ("(?:[^"\\]|\\.)*")$`)
)

// decodeProblems turns yaml.v3's decoding errors ("line 7: field limts not
// found in type config.API") into Problems naming the key path
// ("apis[0].limts: unknown key").
func decodeProblems(name string, err error, idx *index) []*Problem {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []*Problem{syntaxProblem(name, err)}
	}
	probs := make([]*Problem, 0, len(te.Errors))
	for _, msg := range te.Errors {
		line, reason := splitLine(msg)
		key, reason := idx.explain(line, reason)
		probs = append(probs, &Problem{File: name, Line: max(line, 1), Key: key, Reason: reason})
	}
	return probs
}

// explain finds the key a decoding message on line is about and rewords
// the message for people.
func (idx *index) explain(line int, msg string) (key, reason string) {
	if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
		return idx.keyAt(line, m[1]), "unknown key"
	}
	if m := duplicateKeyRE.FindStringSubmatch(msg); m != nil {
		return idx.keyAt(line, m[1]), "duplicate key (first set on line " + m[2] + ")"
	}
	if m := cannotRE.FindStringSubmatch(msg); m != nil {
		return idx.valueAt(line, m[1], m[2], m[2] != ""),
			fmt.Sprintf("want %s, got %s", describeType(m[3]), describeValue(m[1], m[2]))
	}
	// Messages of UnmarshalYAML methods, e.g. Duration's
	// `want a duration such as "30s", got "soon"`.
	value, quoted := "", false
	if g := gotQuotedRE.FindStringSubmatch(msg); g != nil {
		value, _ = strconv.Unquote(g[1])
		quoted = true
	}
	return idx.valueAt(line, "", value, quoted), msg
}

// keyAt finds the path of the key written as key on line.
func (idx *index) keyAt(line int, key string) string {
	for i := len(idx.entries) - 1; i >= 0; i-- {
		if e := idx.entries[i]; e.line == line && e.key == key {
			return e.path
		}
	}
	return idx.valueAt(line, "", "", false)
}

// valueAt finds the path whose value starts on line. yaml.v3 names the
// offending value (shortened to 7 characters and "..." when long) and its
// tag; they pick the right key when several share a line, as in
// "limits: {maxFrameBytes: big, idleTimeout: soon}". The deepest match
// wins; with no match the deepest key on the line is used.
func (idx *index) valueAt(line int, tag, value string, hasValue bool) string {
	best, fallback := "", ""
	for _, e := range idx.entries {
		v := e.value
		if v.Line != line && e.line != line {
			continue
		}
		if len(e.path) > len(fallback) {
			fallback = e.path
		}
		if v.Line != line || !valueMatches(v, tag, value, hasValue) {
			continue
		}
		if len(e.path) > len(best) {
			best = e.path
		}
	}
	switch {
	case best != "":
		return best
	case fallback != "":
		return fallback
	}
	return rootKey
}

func valueMatches(v *yaml.Node, tag, value string, hasValue bool) bool {
	switch tag {
	case "!!seq":
		return v.Kind == yaml.SequenceNode
	case "!!map":
		return v.Kind == yaml.MappingNode
	}
	if v.Kind != yaml.ScalarNode {
		return false
	}
	if !hasValue {
		return true
	}
	if short, ok := strings.CutSuffix(value, "..."); ok && len(v.Value) > 10 {
		return strings.HasPrefix(v.Value, short)
	}
	return v.Value == value
}

// describeType says in words what a Go type wants in YAML.
func describeType(goType string) string {
	t := strings.TrimPrefix(goType, "*")
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.HasPrefix(t, "config."):
		return "a mapping"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "a whole number"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	}
	return t
}

// describeValue says what was written instead.
func describeValue(tag, value string) string {
	switch tag {
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	}
	return strconv.Quote(value)
}

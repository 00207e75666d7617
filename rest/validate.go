package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// ErrBadModel is wrapped by CompileModels' errors.
var ErrBadModel = errors.New("rest: invalid model")

// ModelError is a model that does not compile.
type ModelError struct {
	Model string
	Err   error
}

func (e *ModelError) Error() string { return "rest: model " + e.Model + ": " + e.Err.Error() }

// Unwrap makes errors.Is(err, ErrBadModel) match.
func (e *ModelError) Unwrap() []error { return []error{ErrBadModel, e.Err} }

// Validation is a REST API method's request validation: AWS's request
// validator (validateRequestBody, validateRequestParameters) with the
// method's requestModels and requestParameters. A request that fails
// is answered 400 without calling the backend.
type Validation struct {
	// Body validates the body against Models (validateRequestBody).
	Body bool
	// Params checks that Required are present and not blank
	// (validateRequestParameters).
	Params bool
	// Models by content type; "$default" takes any other.
	Models map[string]*Model
	// Required are the request parameters marked true.
	Required []RequestParameter
}

// RequestParameter is one of a method's request parameters,
// method.request.{path,querystring,header}.NAME.
type RequestParameter struct {
	// Source is ParamPath, ParamQueryString or ParamHeader.
	Source string
	Name   string
}

// ParseRequestParameter parses a requestParameters key.
func ParseRequestParameter(key string) (RequestParameter, error) {
	p, err := ParseParamExpr(key)
	if err != nil || (p.Source != ParamPath && p.Source != ParamQueryString && p.Source != ParamHeader) {
		return RequestParameter{}, fmt.Errorf("%w: %q: want method.request.path.NAME, method.request.querystring.NAME or method.request.header.NAME", ErrBadExpression, key)
	}
	return RequestParameter(p), nil
}

// Model is a compiled JSON Schema (draft 4, as AWS's models).
type Model struct {
	Name   string
	schema *jsonschema.Schema
}

// ModelURL is where a model lives, as AWS addresses it in $ref:
// https://apigateway.amazonaws.com/restapis/{apiID}/models/{name}.
func ModelURL(apiID, name string) string {
	return "https://apigateway.amazonaws.com/restapis/" + apiID + "/models/" + name
}

// CompileModels compiles an API's models, each a JSON Schema as decoded
// from YAML or JSON. Draft 4 is forced, whatever $schema says. A model
// may $ref another by its ModelURL; nothing is fetched.
func CompileModels(apiID string, models map[string]any) (map[string]*Model, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4)
	c.UseLoader(noLoader{})
	names := make([]string, 0, len(models))
	for name := range models {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		doc, err := jsonDoc(models[name])
		if err != nil {
			return nil, &ModelError{Model: name, Err: err}
		}
		if m, ok := doc.(map[string]any); ok {
			delete(m, "$schema") // draft 4, as AWS
		}
		if err := c.AddResource(ModelURL(apiID, name), doc); err != nil {
			return nil, &ModelError{Model: name, Err: err}
		}
	}
	out := make(map[string]*Model, len(models))
	for _, name := range names {
		s, err := c.Compile(ModelURL(apiID, name))
		if err != nil {
			return nil, &ModelError{Model: name, Err: err}
		}
		out[name] = &Model{Name: name, schema: s}
	}
	return out, nil
}

// jsonDoc turns a decoded YAML value into what jsonschema reads.
func jsonDoc(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s: a model may only refer to the API's own models", url)
}

// check validates x's request: the parameters, then the body. nil: it
// passes.
func (v *Validation) check(x *exchange) *gatewayError {
	if v.Params {
		var missing []string
		for _, p := range v.Required {
			val, ok := ParamExpr(p).Eval(x)
			if !ok || strings.TrimSpace(val) == "" {
				missing = append(missing, p.Name)
			}
		}
		if len(missing) > 0 {
			return missingParams(missing)
		}
	}
	if v.Body {
		if m := v.model(x.r.Header.Get("Content-Type")); m != nil {
			if msg, ok := m.valid(x.body); !ok {
				e := *errBadBody
				e.validation = msg
				return &e
			}
		}
	}
	return nil
}

// model is the model for a content type: AWS takes application/json
// when the request names none.
func (v *Validation) model(contentType string) *Model {
	mt := "application/json"
	if contentType != "" {
		if t, _, err := mime.ParseMediaType(contentType); err == nil {
			mt = t
		} else {
			mt = strings.ToLower(strings.TrimSpace(contentType))
		}
	}
	if m := v.Models[mt]; m != nil {
		return m
	}
	return v.Models["$default"]
}

// valid validates body (empty: JSON null) against m; the message says
// what is wrong.
func (m *Model) valid(body []byte) (string, bool) {
	var doc any
	if len(bytes.TrimSpace(body)) > 0 {
		var err error
		if doc, err = jsonschema.UnmarshalJSON(bytes.NewReader(body)); err != nil {
			return "[the body is not JSON: " + err.Error() + "]", false
		}
	}
	if err := m.schema.Validate(doc); err != nil {
		// The first line names the schema; the rest say what is wrong.
		lines := strings.Split(err.Error(), "\n")
		if len(lines) > 1 {
			lines = lines[1:]
		}
		for i, l := range lines {
			lines[i] = strings.TrimPrefix(strings.TrimSpace(l), "- ")
		}
		return "[" + strings.Join(lines, "; ") + "]", false
	}
	return "", true
}

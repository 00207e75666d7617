package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadAnswer is wrapped (with ErrAuthorizerFailure) by ParseAnswer's
// errors about answers that are neither form AWS accepts.
var ErrBadAnswer = errors.New("auth: the authorizer's answer is neither an IAM policy nor {\"isAuthorized\": ...}")

// Answer is a Lambda authorizer's answer, in either form AWS accepts.
type Answer struct {
	// PrincipalID of the policy form.
	PrincipalID string
	// Policy of the policy form; nil for the simple form.
	Policy *Policy
	// Authorized is the simple form's isAuthorized (ignored with a Policy).
	Authorized bool
	// Context is the answer's context: string, json.Number or bool values
	// (the simple form may also hold objects and arrays).
	Context map[string]any
	// UsageIdentifierKey is the API key chosen for usage plans.
	UsageIdentifierKey string
}

// Policy is an IAM policy document.
type Policy struct {
	Statements []Statement
}

// Statement is one statement of a policy: Effect on Actions over
// Resources, each a pattern where '*' matches any run of characters and
// '?' any one character.
type Statement struct {
	Allow     bool // Effect "Allow"; false: "Deny"
	Actions   []string
	Resources []string
}

// InvokeAction is the IAM action that lets a caller through API Gateway.
const InvokeAction = "execute-api:Invoke"

// stringList is an IAM "string or list of strings".
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '[' {
		var s []string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = s
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*l = []string{s}
	return nil
}

type statementJSON struct {
	Effect   string     `json:"Effect"`
	Action   stringList `json:"Action"`
	Resource stringList `json:"Resource"`
}

// statementsJSON is a policy's Statement: one statement or a list.
type statementsJSON []statementJSON

func (s *statementsJSON) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var one statementJSON
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = []statementJSON{one}
		return nil
	}
	var many []statementJSON
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

type answerJSON struct {
	PrincipalID    *string `json:"principalId"`
	PolicyDocument *struct {
		Version   string         `json:"Version"`
		Statement statementsJSON `json:"Statement"`
	} `json:"policyDocument"`
	IsAuthorized       *bool          `json:"isAuthorized"`
	Context            map[string]any `json:"context"`
	UsageIdentifierKey string         `json:"usageIdentifierKey"`
	Message            *string        `json:"message"`
}

// ParseAnswer parses an authorizer's answer: the IAM policy form
// ({"principalId", "policyDocument", "context", "usageIdentifierKey"})
// or the simple form ({"isAuthorized", "context"}). A body
// {"message":"Unauthorized"} (how a Lambda's Unauthorized error arrives
// over HTTP) gives an error wrapping ErrUnauthorized; anything else that
// is not one of the forms, or a policy answer whose context holds an
// object or an array (AWS refuses those), wraps ErrAuthorizerFailure and
// ErrBadAnswer.
func ParseAnswer(body []byte) (*Answer, error) {
	var a answerJSON
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("%w: %w: %w", ErrAuthorizerFailure, ErrBadAnswer, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: %w: data after the JSON object", ErrAuthorizerFailure, ErrBadAnswer)
	}
	switch {
	case a.PolicyDocument != nil:
		out := &Answer{Policy: &Policy{}, Context: a.Context, UsageIdentifierKey: a.UsageIdentifierKey}
		if a.PrincipalID != nil {
			out.PrincipalID = *a.PrincipalID
		}
		for k, v := range a.Context {
			switch v.(type) {
			case string, json.Number, bool, nil:
			default:
				return nil, fmt.Errorf("%w: %w: context.%s is an object or an array", ErrAuthorizerFailure, ErrBadAnswer, k)
			}
		}
		for i, st := range a.PolicyDocument.Statement {
			var allow bool
			switch {
			case strings.EqualFold(st.Effect, "Allow"):
				allow = true
			case strings.EqualFold(st.Effect, "Deny"):
			default:
				return nil, fmt.Errorf("%w: %w: Statement[%d].Effect %q (want Allow or Deny)", ErrAuthorizerFailure, ErrBadAnswer, i, st.Effect)
			}
			out.Policy.Statements = append(out.Policy.Statements, Statement{Allow: allow, Actions: st.Action, Resources: st.Resource})
		}
		return out, nil
	case a.IsAuthorized != nil:
		return &Answer{Authorized: *a.IsAuthorized, Context: a.Context}, nil
	case a.Message != nil && *a.Message == "Unauthorized":
		return nil, fmt.Errorf("%w: the authorizer answered Unauthorized", ErrUnauthorized)
	}
	return nil, fmt.Errorf("%w: %w", ErrAuthorizerFailure, ErrBadAnswer)
}

// Allows decides the answer for methodArn: nil to let the request
// through, or an error wrapping ErrForbidden. For a policy, an explicit
// Deny matching execute-api:Invoke on methodArn wins over any Allow, and
// without a matching Allow the request is denied.
func (a *Answer) Allows(methodArn string) error {
	if a.Policy == nil {
		if a.Authorized {
			return nil
		}
		return fmt.Errorf("%w: isAuthorized is false", ErrForbidden)
	}
	return a.Policy.Allows(InvokeAction, methodArn)
}

// Allows evaluates the policy for action on resource as IAM does: an
// explicit Deny wins, else a matching Allow lets through, else deny.
// Action names are case-insensitive; resources are case-sensitive.
func (p *Policy) Allows(action, resource string) error {
	allowed := false
	for _, st := range p.Statements {
		if !st.matches(action, resource) {
			continue
		}
		if !st.Allow {
			return fmt.Errorf("%w: an explicit Deny matches %s", ErrForbidden, resource)
		}
		allowed = true
	}
	if !allowed {
		return fmt.Errorf("%w: no Allow statement matches %s", ErrForbidden, resource)
	}
	return nil
}

func (st *Statement) matches(action, resource string) bool {
	actionOK := false
	for _, a := range st.Actions {
		if Wildcard(strings.ToLower(a), strings.ToLower(action)) {
			actionOK = true
			break
		}
	}
	if !actionOK {
		return false
	}
	for _, r := range st.Resources {
		if Wildcard(r, resource) {
			return true
		}
	}
	return false
}

// Wildcard reports whether s matches pattern, where '*' matches any run
// of characters (also none) and '?' exactly one; every other character
// matches itself. It runs in O(len(pattern)·len(s)) at worst.
func Wildcard(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// Stringify renders a context or claim value as AWS puts it in
// requestContext.authorizer: strings as they are, numbers in their JSON
// form (3 → "3"), booleans as "true"/"false", lists as "[a b c]" (as AWS
// renders JWT claims), objects as JSON, null as "".
func Stringify(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.Itoa(v)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = Stringify(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case []string:
		return "[" + strings.Join(v, " ") + "]"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/portico-gateway/portico/metrics"
)

// Defaults of Lambda authorizers.
const (
	// DefaultTimeout bounds one authorizer call: AWS's 10 s quota.
	DefaultTimeout = 10 * time.Second
	// DefaultResultTTL is how long answers are cached (AWS's default for
	// REST and HTTP API authorizers).
	DefaultResultTTL = 300 * time.Second
	// MaxResultTTL is AWS's maximum.
	MaxResultTTL = time.Hour
	// DefaultRegion and DefaultAccountID fill methodArn
	// (arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/ROUTE) where no
	// region or account is configured.
	DefaultRegion    = "us-east-1"
	DefaultAccountID = "123456789012"
)

// maxAnswerBytes bounds an authorizer's answer.
const maxAnswerBytes = 256 << 10

// LambdaOptions configure a Lambda authorizer (REQUEST or TOKEN) called
// over HTTP. The zero value of each optional field means the default
// noted beside it.
type LambdaOptions struct {
	// Name is the authorizer's configured name, for metrics. Required.
	Name string
	// API is the API's name, for metrics.
	API string
	// Type is TypeRequest or TypeToken. Required.
	Type string
	// URI receives the authorizer event as a JSON POST. Required.
	URI string
	// Sources are the identity sources; any missing one refuses with 401
	// without a call. A TOKEN authorizer has exactly one, a header.
	// Required.
	Sources []Source
	// ValidationExpression (TOKEN only) must match the whole token, else
	// 401 without a call. nil: none.
	ValidationExpression *regexp.Regexp
	// ResultTTL is how long an answer (Allow and Deny alike) is cached,
	// keyed by the identity-source values. 0: no cache.
	ResultTTL time.Duration
	// CacheSize bounds the cache. 0: DefaultCacheSize.
	CacheSize int
	// Timeout bounds one call. 0: DefaultTimeout.
	Timeout time.Duration
	// Region and AccountID fill methodArn. "": DefaultRegion,
	// DefaultAccountID.
	Region, AccountID string
	// Client makes the calls. nil: http.DefaultClient.
	Client *http.Client
	// Metrics receives AuthorizerRequests. nil: not counted.
	Metrics *metrics.Set
	// Now is the clock of the cache. nil: time.Now.
	Now func() time.Time
}

// Lambda is a REQUEST or TOKEN authorizer: it POSTs AWS's authorizer
// event to a URI and reads AWS's answer (an IAM policy, or
// {"isAuthorized": ...}). An HTTP 401 answer, or a body
// {"message":"Unauthorized"}, is a Lambda's "Unauthorized" error: 401.
// Any other non-2xx answer, a timeout, an unreachable URI or garbage is
// a failure: 500, never a pass.
type Lambda struct {
	o      LambdaOptions
	cache  *resultCache // nil: no cache
	flight singleflight.Group
	count  counters
}

// counters are an authorizer's AuthorizerRequests, resolved once.
type counters struct{ allow, deny, unauthorized, failed, cacheHit prometheus.Counter }

func newCounters(m *metrics.Set, api, name string) counters {
	if m == nil {
		m = metrics.New(nil)
	}
	c := func(result string) prometheus.Counter { return m.AuthorizerRequests.WithLabelValues(api, name, result) }
	return counters{allow: c("allow"), deny: c("deny"), unauthorized: c("unauthorized"), failed: c("error"), cacheHit: c("cache_hit")}
}

// record counts the outcome err of an authorization.
func (c *counters) record(err error) {
	switch {
	case err == nil:
		c.allow.Inc()
	case errors.Is(err, ErrForbidden):
		c.deny.Inc()
	case errors.Is(err, ErrUnauthorized):
		c.unauthorized.Inc()
	default:
		c.failed.Inc()
	}
}

var _ Authorizer = (*Lambda)(nil)

// NewLambda checks o and returns the authorizer.
func NewLambda(o LambdaOptions) (*Lambda, error) {
	switch {
	case o.Name == "":
		return nil, errors.New("auth: a Lambda authorizer needs a name")
	case o.Type != TypeRequest && o.Type != TypeToken:
		return nil, fmt.Errorf("auth: authorizer %q: type %q (want %s or %s)", o.Name, o.Type, TypeRequest, TypeToken)
	case o.URI == "":
		return nil, fmt.Errorf("auth: authorizer %q needs a uri", o.Name)
	case len(o.Sources) == 0:
		return nil, fmt.Errorf("auth: authorizer %q needs an identity source", o.Name)
	case o.Type == TypeToken && (len(o.Sources) != 1 || o.Sources[0].Kind != FromHeader):
		return nil, fmt.Errorf("auth: TOKEN authorizer %q takes exactly one header as identity source", o.Name)
	case o.ResultTTL < 0 || o.ResultTTL > MaxResultTTL:
		return nil, fmt.Errorf("auth: authorizer %q: resultTtl %s (want 0 to 1h)", o.Name, o.ResultTTL)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.Region == "" {
		o.Region = DefaultRegion
	}
	if o.AccountID == "" {
		o.AccountID = DefaultAccountID
	}
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	l := &Lambda{o: o, count: newCounters(o.Metrics, o.API, o.Name)}
	if o.ResultTTL > 0 {
		l.cache = newResultCache(o.CacheSize, o.ResultTTL, o.Now)
	}
	return l, nil
}

// MethodARN is the methodArn of r:
// arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/{routeKey}, or
// r.MethodPath in place of the route key when it is set.
func MethodARN(region, account string, r *Request) string {
	end := r.RouteKey
	if r.MethodPath != "" {
		end = r.MethodPath
	}
	return "arn:aws:execute-api:" + region + ":" + account + ":" + r.APIID + "/" + r.Stage + "/" + end
}

// Authorize implements Authorizer.
func (l *Lambda) Authorize(ctx context.Context, r *Request) (*Identity, error) {
	key, vals, ok := values(l.o.Sources, r)
	if !ok {
		l.count.unauthorized.Inc()
		return nil, fmt.Errorf("%w: an identity source is missing or empty", ErrUnauthorized)
	}
	if re := l.o.ValidationExpression; re != nil && !re.MatchString(vals[0]) {
		l.count.unauthorized.Inc()
		return nil, fmt.Errorf("%w: the token does not match identityValidationExpression", ErrUnauthorized)
	}
	methodArn := MethodARN(l.o.Region, l.o.AccountID, r)
	id := &Identity{Type: l.o.Type, Subprotocol: selectedSubprotocol(l.o.Sources, r)}
	var answer *Answer
	if l.cache != nil {
		if c, hit := l.cache.get(key); hit {
			l.count.cacheHit.Inc()
			if id.Subprotocol == "" {
				return c.identity(l.o.Type, methodArn)
			}
			return c.Answer.identity(id, methodArn)
		}
		// One call for every concurrent request with these identity
		// values; it outlives any one client that goes away.
		v, err, _ := l.flight.Do(key, func() (any, error) {
			if c, hit := l.cache.get(key); hit {
				return c.Answer, nil
			}
			start := time.Now()
			a, err := l.call(context.WithoutCancel(ctx), r, vals, methodArn)
			id.IntegrationLatency = time.Since(start).Milliseconds()
			if err == nil {
				l.cache.put(key, &cachedAnswer{Answer: a})
			}
			return a, err
		})
		if err != nil {
			l.count.record(err)
			return nil, err
		}
		answer = v.(*Answer)
	} else {
		start := time.Now()
		a, err := l.call(ctx, r, vals, methodArn)
		id.IntegrationLatency = time.Since(start).Milliseconds()
		if err != nil {
			l.count.record(err)
			return nil, err
		}
		answer = a
	}
	id, err := answer.identity(id, methodArn)
	l.count.record(err)
	return id, err
}

// identity fills id from the answer for methodArn, or denies.
func (a *Answer) identity(id *Identity, methodArn string) (*Identity, error) {
	if err := a.Allows(methodArn); err != nil {
		return nil, err
	}
	id.PrincipalID, id.Context, id.UsageIdentifierKey = a.PrincipalID, a.Context, a.UsageIdentifierKey
	return id, nil
}

// requestEvent is AWS's REQUEST authorizer event of a WebSocket $connect.
type requestEvent struct {
	Type                            string              `json:"type"`
	MethodArn                       string              `json:"methodArn"`
	Headers                         map[string]string   `json:"headers"`
	MultiValueHeaders               map[string][]string `json:"multiValueHeaders"`
	QueryStringParameters           map[string]string   `json:"queryStringParameters"`
	MultiValueQueryStringParameters map[string][]string `json:"multiValueQueryStringParameters"`
	StageVariables                  map[string]string   `json:"stageVariables"`
	RequestContext                  any                 `json:"requestContext,omitempty"`
}

// tokenEvent is AWS's TOKEN authorizer event.
type tokenEvent struct {
	Type               string `json:"type"`
	AuthorizationToken string `json:"authorizationToken"`
	MethodArn          string `json:"methodArn"`
}

// RequestOnly implements RequestOnly: a Lambda authorizer whose identity
// sources name no $context value reads only the request until it sends
// its event (a cache miss), and completes the request first.
func (l *Lambda) RequestOnly() bool {
	for _, s := range l.o.Sources {
		if s.Kind == FromContext {
			return false
		}
	}
	return true
}

// Event is the JSON event l sends for r.
func (l *Lambda) Event(r *Request, vals []string, methodArn string) ([]byte, error) {
	if l.o.Type == TypeToken {
		return json.Marshal(tokenEvent{Type: TypeToken, AuthorizationToken: vals[0], MethodArn: methodArn})
	}
	r.complete()
	if r.RequestEvent != nil {
		return r.RequestEvent(vals, methodArn)
	}
	ev := requestEvent{Type: TypeRequest, MethodArn: methodArn, Headers: r.EventHeaders, MultiValueHeaders: r.EventMultiValueHeaders,
		StageVariables: r.StageVariables, RequestContext: r.RequestContext}
	if ev.Headers == nil {
		ev.Headers, ev.MultiValueHeaders = make(map[string]string, len(r.Header)), make(map[string][]string, len(r.Header))
		for k, v := range r.Header {
			if len(v) > 0 {
				ev.Headers[k], ev.MultiValueHeaders[k] = v[len(v)-1], v
			}
		}
	}
	q := r.QueryValues()
	if len(q) > 0 {
		ev.QueryStringParameters = make(map[string]string, len(q))
		ev.MultiValueQueryStringParameters = q
		for k, v := range q {
			if len(v) > 0 {
				ev.QueryStringParameters[k] = v[len(v)-1]
			}
		}
	}
	if ev.StageVariables == nil {
		ev.StageVariables = map[string]string{}
	}
	return json.Marshal(ev)
}

// call POSTs the event and parses the answer.
func (l *Lambda) call(ctx context.Context, r *Request, vals []string, methodArn string) (*Answer, error) {
	body, err := l.Event(r, vals, methodArn)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding the event: %w", ErrAuthorizerFailure, err)
	}
	ctx, cancel := context.WithTimeout(ctx, l.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.o.URI, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAuthorizerFailure, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.o.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: calling %s: %w", ErrAuthorizerFailure, l.o.Name, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the answer of %s: %w", ErrAuthorizerFailure, l.o.Name, err)
	}
	if len(data) > maxAnswerBytes {
		return nil, fmt.Errorf("%w: the answer of %s is over %d bytes", ErrAuthorizerFailure, l.o.Name, maxAnswerBytes)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, fmt.Errorf("%w: %s answered 401", ErrUnauthorized, l.o.Name)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		if a, err := ParseAnswer(data); err != nil && errors.Is(err, ErrUnauthorized) && a == nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s answered HTTP %d", ErrAuthorizerFailure, l.o.Name, resp.StatusCode)
	}
	a, err := ParseAnswer(data)
	if err != nil {
		return nil, fmt.Errorf("authorizer %s: %w", l.o.Name, err)
	}
	return a, nil
}

// trimBearer removes a leading "Bearer " (any case) from a token.
func trimBearer(s string) string {
	if len(s) > 7 && strings.EqualFold(s[:7], "bearer ") {
		return strings.TrimSpace(s[7:])
	}
	return s
}

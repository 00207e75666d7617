package loadtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// AuthServer is the identity side of an authorization benchmark, all on
// one loopback listener:
//
//   - POST /allow is a REQUEST or TOKEN Lambda authorizer reached over
//     HTTP, as Portico calls one: it allows any request that carries a
//     token (the TOKEN event's authorizationToken, else the query
//     parameter "token", else the Authorization header) with an Allow
//     policy for execute-api:Invoke on "*", principalId the token (a
//     "Bearer " prefix removed, at most 128 bytes) and a small context. A
//     token starting with "deny" gets a Deny policy, and no token the
//     Lambda's "Unauthorized" (HTTP 401), so that a test can tell that the
//     gateway asked;
//   - GET /.well-known/openid-configuration and GET /jwks are an OpenID
//     issuer whose one RSA key is generated when the server is made;
//   - GET /token?sub=SUB&aud=AUD mints an RS256 JWT of that issuer.
//
// The issuer is the server's base URL without a trailing slash
// (http://127.0.0.1:PORT), so a jwt authorizer of Portico takes
// issuer: http://127.0.0.1:PORT and the audience the tokens were minted
// for.
type AuthServer struct {
	key    *rsa.PrivateKey
	kid    string
	issuer atomic.Pointer[string]
	ttl    time.Duration
	now    func() time.Time

	calls, allowed, refused, minted, jwksServed atomic.Int64
}

// AuthServerKeyID is the kid of the issuer's key.
const AuthServerKeyID = "portico-load-1"

// maxAuthBody bounds an authorizer event.
const maxAuthBody = 64 << 10

// MaxTokenTTL bounds the lifetime of a minted token.
const MaxTokenTTL = 24 * time.Hour

// NewAuthServer generates the issuer's RSA key. Tokens it mints live ttl
// (default 1h, at most MaxTokenTTL). SetIssuer must be called once the
// listening address is known.
func NewAuthServer(ttl time.Duration) (*AuthServer, error) {
	if ttl == 0 {
		ttl = time.Hour
	}
	if ttl < 0 || ttl > MaxTokenTTL {
		return nil, fmt.Errorf("token lifetime %v: want between 1s and %v", ttl, MaxTokenTTL)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generating the issuer's RSA key: %w", err)
	}
	return &AuthServer{key: key, kid: AuthServerKeyID, ttl: ttl, now: time.Now}, nil
}

// SetIssuer sets the issuer URL, e.g. "http://127.0.0.1:18500".
func (a *AuthServer) SetIssuer(issuer string) {
	s := strings.TrimSuffix(issuer, "/")
	a.issuer.Store(&s)
}

// Issuer returns the issuer URL (the iss of minted tokens).
func (a *AuthServer) Issuer() string {
	if p := a.issuer.Load(); p != nil {
		return *p
	}
	return ""
}

// AuthCounts are what an AuthServer has answered.
type AuthCounts struct {
	// Calls is the authorizer events received; Allowed and Refused split
	// them (Refused: a Deny policy or Unauthorized).
	Calls, Allowed, Refused int64
	// Minted is the tokens signed; JWKS the key sets served.
	Minted, JWKS int64
}

// Counts returns the counters so far.
func (a *AuthServer) Counts() AuthCounts {
	return AuthCounts{Calls: a.calls.Load(), Allowed: a.allowed.Load(), Refused: a.refused.Load(),
		Minted: a.minted.Load(), JWKS: a.jwksServed.Load()}
}

// ServeHTTP routes the four endpoints.
func (a *AuthServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/allow" && r.Method == http.MethodPost:
		a.authorize(w, r)
	case r.URL.Path == "/.well-known/openid-configuration" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]string{"issuer": a.Issuer(), "jwks_uri": a.Issuer() + "/jwks"})
	case r.URL.Path == "/jwks" && r.Method == http.MethodGet:
		a.jwksServed.Add(1)
		writeJSON(w, http.StatusOK, a.JWKS())
	case r.URL.Path == "/token" && r.Method == http.MethodGet:
		q := r.URL.Query()
		tok, err := a.Mint(q.Get("sub"), q.Get("aud"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, tok+"\n")
	default:
		http.Error(w, "portico-load authorizer: POST /allow, GET /.well-known/openid-configuration, /jwks, /token?sub=&aud=", http.StatusNotFound)
	}
}

// authEvent is what the authorizer reads of a REQUEST or TOKEN event.
type authEvent struct {
	Type                  string            `json:"type"`
	AuthorizationToken    string            `json:"authorizationToken"`
	MethodArn             string            `json:"methodArn"`
	Headers               map[string]string `json:"headers"`
	QueryStringParameters map[string]string `json:"queryStringParameters"`
}

// token returns the event's token, without a "Bearer " prefix.
func (e *authEvent) token() string {
	t := e.AuthorizationToken
	if t == "" {
		t = e.QueryStringParameters["token"]
	}
	if t == "" {
		for k, v := range e.Headers {
			if strings.EqualFold(k, "Authorization") {
				t = v
				break
			}
		}
	}
	if len(t) > 7 && strings.EqualFold(t[:7], "bearer ") {
		t = t[7:]
	}
	return t
}

func (a *AuthServer) authorize(w http.ResponseWriter, r *http.Request) {
	a.calls.Add(1)
	var ev authEvent
	if err := json.NewDecoder(io.LimitReader(r.Body, maxAuthBody)).Decode(&ev); err != nil {
		a.refused.Add(1)
		http.Error(w, "portico-load authorizer: not an authorizer event: "+err.Error(), http.StatusBadRequest)
		return
	}
	tok := ev.token()
	if tok == "" {
		a.refused.Add(1)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Unauthorized"})
		return
	}
	effect := "Allow"
	if strings.HasPrefix(tok, "deny") {
		effect = "Deny"
		a.refused.Add(1)
	} else {
		a.allowed.Add(1)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"principalId": clip(tok, 128),
		"policyDocument": map[string]any{"Version": "2012-10-17", "Statement": []any{
			map[string]string{"Action": "execute-api:Invoke", "Effect": effect, "Resource": "*"}}},
		"context": map[string]any{"source": "portico-load", "type": ev.Type, "tokenBytes": len(tok)},
	})
}

// JWKS returns the issuer's key set.
func (a *AuthServer) JWKS() map[string]any {
	b64 := base64.RawURLEncoding.EncodeToString
	return map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": a.kid,
		"n": b64(a.key.N.Bytes()), "e": b64(big.NewInt(int64(a.key.E)).Bytes()),
	}}}
}

// Mint signs an RS256 token for sub (default "portico-load") and aud
// (required), with iss the issuer, iat now, exp now plus the lifetime
// and scope "bench".
func (a *AuthServer) Mint(sub, aud string) (string, error) {
	if aud == "" {
		return "", errors.New("aud is required (the audience of the gateway's jwt authorizer)")
	}
	if sub == "" {
		sub = "portico-load"
	}
	if len(sub) > 256 || len(aud) > 256 {
		return "", errors.New("sub and aud: at most 256 bytes each")
	}
	now := a.now()
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": a.Issuer(), "sub": sub, "aud": aud, "scope": "bench",
		"iat": now.Unix(), "exp": now.Add(a.ttl).Unix(),
	})
	t.Header["kid"] = a.kid
	s, err := t.SignedString(a.key)
	if err != nil {
		return "", fmt.Errorf("signing a token: %w", err)
	}
	a.minted.Add(1)
	return s, nil
}

// MaxTokenFile bounds the tokens WriteTokenFile mints.
const MaxTokenFile = 100_000

// WriteTokenFile mints n tokens for aud, one a line, to path: with n 1
// the token's sub is sub; with more, sub-0, sub-1, ... so that each line
// is a distinct identity. The tokens are signed on every core.
func (a *AuthServer) WriteTokenFile(path, sub, aud string, n int) error {
	if n < 1 || n > MaxTokenFile {
		return fmt.Errorf("--tokens %d: want 1 to %d", n, MaxTokenFile)
	}
	if sub == "" {
		sub = "portico-load"
	}
	toks := make([]string, n)
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, 8) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				s := sub
				if n > 1 {
					s = sub + "-" + strconv.Itoa(i)
				}
				toks[i], errs[i] = a.Mint(s, aud)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Written whole, then renamed, so that a script waiting for the file
	// never reads half of it.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(toks, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ServeAuthorizer runs an AuthServer on addr (loopback only) until ctx
// ends or duration passes (at most 1h). When tokenFile is set, n tokens
// for aud (sub, sub-0, ...) are written there once the server listens;
// ready then gets the issuer URL.
func ServeAuthorizer(ctx context.Context, a *AuthServer, addr string, duration time.Duration,
	tokenFile, sub, aud string, n int, ready func(issuer string)) error {
	if duration <= 0 || duration > time.Hour {
		return errors.New("authorizer: --duration must be between 1s and 1h (it stops by itself)")
	}
	if tokenFile != "" && aud == "" {
		return errors.New("authorizer: --token-file needs --aud, the audience of the gateway's jwt authorizer")
	}
	s, err := StartServer(addr, a)
	if err != nil {
		return fmt.Errorf("authorizer: %w", err)
	}
	defer s.Close()
	a.SetIssuer(strings.TrimSuffix(s.URL, "/"))
	if tokenFile != "" {
		if err := a.WriteTokenFile(tokenFile, sub, aud, n); err != nil {
			return fmt.Errorf("authorizer: %w", err)
		}
	}
	if ready != nil {
		ready(a.Issuer())
	}
	t := time.NewTimer(duration)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-s.done:
	}
	return nil
}

// ReadTokenFile reads a token file (ParseTokens) of at most 64 MiB.
func ReadTokenFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--token-file: %w", err)
	}
	defer f.Close()
	toks, err := ParseTokens(io.LimitReader(f, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("--token-file %s: %w", path, err)
	}
	return toks, nil
}

// ErrNoToken: a token file holds no token.
var ErrNoToken = errors.New("no token in it")

// MaxTokenBytes bounds one token (one line of a token file).
const MaxTokenBytes = 16 << 10

// ParseTokens reads tokens, one a line: spaces around a token and blank
// lines are skipped, "\r\n" line ends are taken. A token must be
// printable ASCII without spaces (what a query parameter or a header
// carries after escaping) and at most MaxTokenBytes long.
func ParseTokens(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxTokenBytes+2)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		for i := 0; i < len(line); i++ {
			if line[i] <= ' ' || line[i] >= 0x7f {
				return nil, fmt.Errorf("line %d: byte %#x at %d: a token is printable ASCII without spaces", n, line[i], i)
			}
		}
		if len(line) > MaxTokenBytes {
			return nil, fmt.Errorf("line %d: a token over %d bytes", n, MaxTokenBytes)
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading tokens: %w", err)
	}
	if len(out) == 0 {
		return nil, ErrNoToken
	}
	return out, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

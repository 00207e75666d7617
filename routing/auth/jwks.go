package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// JWKS limits: AWS's for JWT authorizers.
const (
	maxJWKSBytes = 150000
	// DefaultRefreshInterval is the least time between two fetches of
	// one issuer's keys when a token names an unknown kid.
	DefaultRefreshInterval = time.Minute
	// DefaultKeysMaxAge is how long fetched keys are used before they
	// are fetched again.
	DefaultKeysMaxAge = time.Hour
)

// errUnknownKID: no key of the issuer has the token's kid.
var errUnknownKID = errors.New("auth: no key of the issuer has this kid")

// KeyCache fetches and keeps JSON Web Key Sets, keyed by issuer and kid
// together: a kid is looked up only among the keys of the token's
// authorizer's own issuer. The jwks_uri comes from the issuer's
// /.well-known/openid-configuration unless one is given. Keys are
// fetched on first use, again after DefaultKeysMaxAge, and again when a
// token names an unknown kid (at most once per refresh interval per
// issuer, so tokens with made-up kids cannot make it fetch in a loop).
// Safe for concurrent use; one KeyCache may serve many authorizers.
type KeyCache struct {
	client   *http.Client
	now      func() time.Time
	interval time.Duration

	mu     sync.Mutex
	sets   map[string]*keySet // by issuer
	flight singleflight.Group
}

type keySet struct {
	jwksURI     string                      // "" until discovered
	keys        map[string]*jose.JSONWebKey // replaced whole on each fetch: a key's pointer names one fetch of it
	fetchedAt   time.Time                   // last successful fetch
	attemptedAt time.Time                   // last fetch, successful or not
	fetching    bool                        // a fetch is in flight: callers wait for it
}

// NewKeyCache returns an empty cache. client nil: http.DefaultClient;
// now nil: time.Now; interval 0: DefaultRefreshInterval.
func NewKeyCache(client *http.Client, now func() time.Time, interval time.Duration) *KeyCache {
	if client == nil {
		client = http.DefaultClient
	}
	if now == nil {
		now = time.Now
	}
	if interval <= 0 {
		interval = DefaultRefreshInterval
	}
	return &KeyCache{client: client, now: now, interval: interval, sets: make(map[string]*keySet)}
}

// Key returns the public key with kid of issuer. jwksURI "" means
// discovery. Errors wrap errUnknownKID (the caller answers 401) or
// ErrAuthorizerFailure (the keys could not be fetched).
func (c *KeyCache) Key(ctx context.Context, issuer, jwksURI, kid string, timeout time.Duration) (*jose.JSONWebKey, error) {
	c.mu.Lock()
	ks := c.sets[issuer]
	if ks == nil {
		ks = &keySet{jwksURI: jwksURI}
		c.sets[issuer] = ks
	}
	now := c.now()
	k, found := ks.keys[kid]
	fresh := !ks.fetchedAt.IsZero() && now.Sub(ks.fetchedAt) < DefaultKeysMaxAge
	mayFetch := ks.attemptedAt.IsZero() || now.Sub(ks.attemptedAt) >= c.interval
	// A fetch in flight (the first one, typically, with a burst of
	// handshakes behind it) is joined rather than taken for one that
	// failed a moment ago.
	inFlight := ks.fetching
	c.mu.Unlock()
	if found && fresh {
		return k, nil
	}
	if !mayFetch && !inFlight {
		if found {
			return k, nil // stale, but refetching failed a moment ago
		}
		return nil, fmt.Errorf("%w: %q", errUnknownKID, kid)
	}
	_, err, _ := c.flight.Do(issuer, func() (any, error) {
		return nil, c.refresh(context.WithoutCancel(ctx), issuer, timeout)
	})
	c.mu.Lock()
	k, found = ks.keys[kid]
	c.mu.Unlock()
	switch {
	case found:
		return k, nil
	case err != nil:
		return nil, err
	}
	return nil, fmt.Errorf("%w: %q", errUnknownKID, kid)
}

// Current reports whether k is still issuer's key kid as last fetched,
// and fresh (fetched less than DefaultKeysMaxAge ago). It never fetches:
// a verified-token cache asks it whether the key that verified a token
// is still the issuer's, and verifies the token afresh when it is not.
func (c *KeyCache) Current(issuer, kid string, k *jose.JSONWebKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ks := c.sets[issuer]
	if ks == nil || ks.fetchedAt.IsZero() || c.now().Sub(ks.fetchedAt) >= DefaultKeysMaxAge {
		return false
	}
	return ks.keys[kid] == k
}

// refresh fetches issuer's keys (discovering jwks_uri first if needed).
func (c *KeyCache) refresh(ctx context.Context, issuer string, timeout time.Duration) error {
	c.mu.Lock()
	ks := c.sets[issuer]
	if !ks.attemptedAt.IsZero() && c.now().Sub(ks.attemptedAt) < c.interval && !ks.fetchedAt.IsZero() &&
		c.now().Sub(ks.fetchedAt) < DefaultKeysMaxAge {
		c.mu.Unlock()
		return nil // another caller refreshed a moment ago
	}
	ks.attemptedAt = c.now()
	ks.fetching = true
	uri := ks.jwksURI
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		ks.fetching = false
		c.mu.Unlock()
	}()

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if uri == "" {
		var err error
		if uri, err = c.discover(ctx, issuer); err != nil {
			return err
		}
	}
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := c.getJSON(ctx, uri, &raw); err != nil {
		return err
	}
	keys := make(map[string]*jose.JSONWebKey, len(raw.Keys))
	for _, r := range raw.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(r); err != nil || !k.Valid() {
			continue // a key type this gateway does not know: skip it, keep the others
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if !k.IsPublic() {
			k = k.Public()
		}
		if _, dup := keys[k.KeyID]; !dup {
			keys[k.KeyID] = &k
		}
	}
	c.mu.Lock()
	ks.jwksURI, ks.keys, ks.fetchedAt = uri, keys, c.now()
	c.mu.Unlock()
	return nil
}

// discover reads jwks_uri from the issuer's OpenID configuration and
// checks that the document names the same issuer (OpenID Connect
// Discovery 1.0, section 4.3).
func (c *KeyCache) discover(ctx context.Context, issuer string) (string, error) {
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := c.getJSON(ctx, strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration", &doc); err != nil {
		return "", err
	}
	if doc.Issuer != issuer {
		return "", fmt.Errorf("%w: the OpenID configuration of %q names issuer %q", ErrAuthorizerFailure, issuer, doc.Issuer)
	}
	if doc.JWKSURI == "" {
		return "", fmt.Errorf("%w: the OpenID configuration of %q has no jwks_uri", ErrAuthorizerFailure, issuer)
	}
	return doc.JWKSURI, nil
}

func (c *KeyCache) getJSON(ctx context.Context, uri string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrAuthorizerFailure, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: fetching %s: %w", ErrAuthorizerFailure, uri, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s answered HTTP %d", ErrAuthorizerFailure, uri, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("%w: reading %s: %w", ErrAuthorizerFailure, uri, err)
	}
	if len(data) > maxJWKSBytes {
		return fmt.Errorf("%w: %s is over %d bytes", ErrAuthorizerFailure, uri, maxJWKSBytes)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrAuthorizerFailure, uri, err)
	}
	return nil
}

// keyFits reports whether k may verify a signature made with alg: the
// key's own alg (when it names one) must be alg, and its type must be
// the one alg needs (an RSA key never verifies an HMAC or an ECDSA
// signature, a P-256 key only ES256).
func keyFits(k *jose.JSONWebKey, alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch pk := k.Key.(type) {
	case *rsa.PublicKey:
		return alg == "RS256" || alg == "RS384" || alg == "RS512"
	case *ecdsa.PublicKey:
		switch pk.Curve.Params().Name {
		case "P-256":
			return alg == "ES256"
		case "P-384":
			return alg == "ES384"
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

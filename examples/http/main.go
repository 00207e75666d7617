// Command http runs the two small programs the HTTP API example needs,
// both on loopback:
//
//   - a pet store, a plain REST service, on 127.0.0.1:8000 (GET /pets,
//     GET /pets/{id}, POST /pets), which Portico proxies to;
//   - a token issuer on 127.0.0.1:9000: the OpenID discovery document
//     and the keys (JWKS) Portico's JWT authorizer fetches, and
//     GET /token?scope=... that mints a signed token to call the API with.
//
// Run it with `go run ./examples/http` and see README.md beside it.
package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	petStoreAddr = "127.0.0.1:8000"
	issuerAddr   = "127.0.0.1:9000"
	// audience is the API the tokens are for: portico.yaml's audience.
	audience = "pets-api"
)

func main() {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		log.Fatal(err)
	}
	iss := &issuer{url: "http://" + issuerAddr, key: key}
	errc := make(chan error, 2)
	go func() { errc <- serve(issuerAddr, iss) }()
	go func() { errc <- serve(petStoreAddr, newPetStore()) }()
	log.Printf("pet store on http://%s, token issuer on %s", petStoreAddr, iss.url)
	log.Fatal(<-errc)
}

func serve(addr string, h http.Handler) error {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

// pet is one pet of the store.
type pet struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
}

// petStore keeps pets in memory.
type petStore struct {
	mu   sync.Mutex
	next int
	pets map[string]pet
	mux  *http.ServeMux
}

func newPetStore() *petStore {
	s := &petStore{next: 3, pets: map[string]pet{"1": {"1", "Rex", "dog"}, "2": {"2", "Tom", "cat"}}, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /pets", s.list)
	s.mux.HandleFunc("GET /pets/{id}", s.get)
	s.mux.HandleFunc("POST /pets", s.create)
	return s
}

func (s *petStore) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *petStore) list(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := make([]pet, 0, len(s.pets))
	for i := 1; i < s.next; i++ {
		if p, ok := s.pets[strconv.Itoa(i)]; ok {
			out = append(out, p)
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *petStore) get(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p, ok := s.pets[r.PathValue("id")]
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "no such pet"})
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *petStore) create(w http.ResponseWriter, r *http.Request) {
	var p pet
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&p); err != nil || p.Name == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "want {\"name\": ..., \"type\": ...}"})
		return
	}
	s.mu.Lock()
	p.ID = strconv.Itoa(s.next)
	s.next++
	s.pets[p.ID] = p
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// issuer is a minimal OpenID issuer: discovery, keys, and tokens for
// whoever asks (it is an example: a real issuer checks who asks).
type issuer struct {
	url string
	key *rsa.PrivateKey
}

const keyID = "example-key"

func (i *issuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		writeJSON(w, http.StatusOK, map[string]string{"issuer": i.url, "jwks_uri": i.url + "/jwks.json"})
	case "/jwks.json":
		pub := i.key.PublicKey
		writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "use": "sig", "alg": "RS256", "kid": keyID,
			"n": b64url(pub.N.Bytes()), "e": b64url(big.NewInt(int64(pub.E)).Bytes()),
		}}})
	case "/token":
		sub := r.URL.Query().Get("sub")
		if sub == "" {
			sub = "newcomer"
		}
		tok, err := i.mint(sub, r.URL.Query().Get("scope"), time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(tok + "\n"))
	default:
		http.NotFound(w, r)
	}
}

// mint signs an RS256 token for sub with the given scopes (space
// separated), valid for an hour.
func (i *issuer) mint(sub, scope string, now time.Time) (string, error) {
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": keyID})
	claims := map[string]any{"iss": i.url, "aud": audience, "sub": sub, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	if scope = strings.TrimSpace(scope); scope != "" {
		claims["scope"] = scope
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signing := b64url(header) + "." + b64url(body)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, i.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", errors.Join(errors.New("signing the token"), err)
	}
	return signing + "." + b64url(sig), nil
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

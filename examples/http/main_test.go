package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/gateway"
)

// The README's walkthrough, end to end: the example's portico.yaml (with
// the pet store and the issuer on test ports), a token from the issuer,
// and the curl requests as Go requests.
func TestWalkthrough(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := &issuer{key: key}
	issSrv := httptest.NewServer(iss)
	t.Cleanup(issSrv.Close)
	iss.url = issSrv.URL
	store := httptest.NewServer(newPetStore())
	t.Cleanup(store.Close)

	raw, err := os.ReadFile("portico.yaml")
	if err != nil {
		t.Fatal(err)
	}
	yml := strings.NewReplacer("http://127.0.0.1:9000", issSrv.URL, "http://127.0.0.1:8000", store.URL,
		"127.0.0.1:8081", "127.0.0.1:0").Replace(string(raw))
	cfg, err := config.Parse("portico.yaml", []byte(yml))
	if err != nil {
		t.Fatalf("the example's configuration: %v", err)
	}
	cfg.Management.Address = "127.0.0.1:0"
	ctx := context.Background()
	g, err := gateway.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
	})
	base := "http://" + g.APIAddr("pets")
	token := func(scope string) string {
		resp, body := do(t, "GET", issSrv.URL+"/token?scope="+scope, "", "")
		if resp.StatusCode != 200 {
			t.Fatalf("token: %d %s", resp.StatusCode, body)
		}
		return strings.TrimSpace(body)
	}

	// curl http://127.0.0.1:8081/pets
	if resp, body := do(t, "GET", base+"/pets", "", ""); resp.StatusCode != 200 || !strings.Contains(body, `"name":"Rex"`) {
		t.Errorf("GET /pets: %d %s", resp.StatusCode, body)
	}
	// curl -i http://127.0.0.1:8081/pets/1 (no token)
	resp, body := do(t, "GET", base+"/pets/1", "", "")
	if resp.StatusCode != 401 || body != `{"message":"Unauthorized"}` || !strings.HasPrefix(resp.Header.Get("www-authenticate"), `Bearer scope="" error="invalid_token"`) {
		t.Errorf("GET /pets/1 without a token: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	read := token("pets/read")
	if resp, body := do(t, "GET", base+"/pets/1", "", read); resp.StatusCode != 200 || !strings.Contains(body, `"id":"1"`) {
		t.Errorf("GET /pets/1 with a token: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, "POST", base+"/pets", `{"name":"Nemo","type":"fish"}`, read); resp.StatusCode != 403 || body != `{"message":"Forbidden"}` {
		t.Errorf("POST /pets without pets/write: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "POST", base+"/pets", `{"name":"Nemo","type":"fish"}`, token("pets/write"))
	var created pet
	if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &created) != nil || created.Name != "Nemo" {
		t.Fatalf("POST /pets with pets/write: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, "GET", base+"/pets/"+created.ID, "", read); resp.StatusCode != 200 || !strings.Contains(body, "Nemo") {
		t.Errorf("GET the new pet: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, "GET", base+"/nothing", "", ""); resp.StatusCode != 404 {
		t.Errorf("GET /nothing: %d", resp.StatusCode)
	}
}

func do(t *testing.T, method, url, body, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

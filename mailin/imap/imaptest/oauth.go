package imaptest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TokenServer is an OAuth2 token endpoint (httptest) for the refresh_token grant. It
// rotates the refresh token on every use, as Microsoft does (the old one stops working),
// and remembers which access tokens it issued and until when, for Check.
type TokenServer struct {
	*httptest.Server
	ClientID, ClientSecret string
	lifetime               time.Duration

	mu       sync.Mutex
	refresh  string               // the one valid refresh token
	issued   map[string]time.Time // access token: expiry
	revoked  bool
	requests int
}

// StartTokenServer issues access tokens valid for lifetime; the first refresh token is
// "rt-0", the client "cid" / "csecret".
func StartTokenServer(t testing.TB, lifetime time.Duration) *TokenServer {
	ts := &TokenServer{ClientID: "cid", ClientSecret: "csecret", lifetime: lifetime, refresh: "rt-0", issued: map[string]time.Time{}}
	ts.Server = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *TokenServer) serve(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.requests++
	w.Header().Set("Content-Type", "application/json")
	fail := func(code string) {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": "test: " + code})
	}
	switch {
	case r.Method != http.MethodPost || r.PostFormValue("grant_type") != "refresh_token":
		fail("unsupported_grant_type")
	case r.PostFormValue("client_id") != ts.ClientID || r.PostFormValue("client_secret") != ts.ClientSecret:
		fail("invalid_client")
	case ts.revoked || r.PostFormValue("refresh_token") != ts.refresh:
		fail("invalid_grant")
	default:
		access := fmt.Sprintf("at-%d", ts.requests)
		ts.issued[access] = time.Now().Add(ts.lifetime)
		ts.refresh = fmt.Sprintf("rt-%d", ts.requests)
		json.NewEncoder(w).Encode(map[string]any{"access_token": access, "token_type": "Bearer",
			"expires_in": int(ts.lifetime / time.Second), "refresh_token": ts.refresh})
	}
}

// Check is the IMAP server's side (MemOptions.XOAUTH2): the token must have been issued,
// not revoked, and not expired.
func (ts *TokenServer) Check(user, token string) (time.Time, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	exp, ok := ts.issued[token]
	if !ok || user != User || time.Now().After(exp) || ts.revoked {
		return time.Time{}, errors.New("invalid token")
	}
	return exp, nil
}

// Revoke makes every token invalid, as a user withdrawing the app's access does.
func (ts *TokenServer) Revoke() {
	ts.mu.Lock()
	ts.revoked = true
	ts.mu.Unlock()
}

// Current is the refresh token the endpoint accepts now, and how many requests it had.
func (ts *TokenServer) Current() (refresh string, requests int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.refresh, ts.requests
}

package imap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// TokenSource hands out OAuth2 access tokens for XOAUTH2.
type TokenSource interface {
	// Token returns an access token that is still valid for a while, refreshing it first
	// when it would expire soon.
	Token(ctx context.Context) (Token, error)
	// Invalidate drops the current access token (the server refused it).
	Invalidate()
}

// Token is an OAuth2 access token.
type Token struct {
	Access string
	Issued time.Time
	Expiry time.Time
}

// RenewAt is when a session authenticated with the token should reconnect with a fresh
// one, so that no command ever goes out under an expired token.
func (t Token) RenewAt() time.Time {
	return t.Expiry.Add(-refreshMargin(t.Expiry.Sub(t.Issued)))
}

// RefreshStore keeps the refresh token. Save must be durable before it returns: Google
// and Microsoft may rotate the refresh token on every use and stop accepting the old one.
type RefreshStore interface {
	Load() (string, error)
	Save(token string) error
}

// OAuth2 refreshes access tokens at an OAuth2 token endpoint (RFC 6749 §6) with a refresh
// token, and writes a rotated refresh token back through Refresh.
type OAuth2 struct {
	TokenURL     string // https://oauth2.googleapis.com/token, https://login.microsoftonline.com/TENANT/oauth2/v2.0/token
	ClientID     string
	ClientSecret string
	Scope        string // sent when set (Microsoft: https://outlook.office.com/IMAP.AccessAsUser.All offline_access)
	Refresh      RefreshStore
	HTTP         *http.Client // nil: a client with a 30s timeout

	mu      sync.Mutex
	cur     Token
	pending string // a rotated refresh token that could not be saved yet
}

// RefreshError is a refusal by the token endpoint: the refresh token was revoked or has
// expired (invalid_grant), the client is misconfigured, ...; a human must act.
type RefreshError struct {
	Status      int
	Code        string // error, e.g. invalid_grant
	Description string // error_description
}

func (e *RefreshError) Error() string {
	msg := fmt.Sprintf("token endpoint refused the refresh token (HTTP %d", e.Status)
	if e.Code != "" {
		msg += ", " + e.Code
	}
	msg += ")"
	if e.Description != "" {
		msg += ": " + e.Description
	}
	if e.Code == "invalid_grant" {
		msg += "; it was revoked or has expired: get a new refresh token (see the README)"
	}
	return msg
}

// refreshMargin is how long before expiry a token is refreshed: five minutes, or a
// quarter of its lifetime when that is shorter.
func refreshMargin(lifetime time.Duration) time.Duration {
	return min(5*time.Minute, lifetime/4)
}

// Token returns the current access token, refreshed first when it would expire within
// the margin. Until a rotated refresh token is saved, it fails: a restart would lose
// access, and the operator must hear of it.
func (o *OAuth2) Token(ctx context.Context) (Token, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cur.Access == "" || !time.Now().Before(o.cur.RenewAt()) {
		if err := o.refresh(ctx); err != nil {
			return Token{}, err
		}
	}
	if o.pending != "" {
		if err := o.Refresh.Save(o.pending); err != nil {
			return Token{}, saveError{fmt.Errorf("save the rotated refresh token: %w", err)}
		}
		o.pending = ""
	}
	return o.cur, nil
}

// Invalidate drops the access token: the next Token refreshes.
func (o *OAuth2) Invalidate() {
	o.mu.Lock()
	o.cur = Token{}
	o.mu.Unlock()
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

func (o *OAuth2) refresh(ctx context.Context) error {
	rt := o.pending
	if rt == "" {
		var err error
		if rt, err = o.Refresh.Load(); err != nil {
			return fmt.Errorf("read refresh token: %w", err)
		}
	}
	if rt == "" {
		return &RefreshError{Code: "invalid_grant", Description: "no refresh token"}
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {o.ClientID}}
	if o.ClientSecret != "" {
		form.Set("client_secret", o.ClientSecret)
	}
	if o.Scope != "" {
		form.Set("scope", o.Scope)
	}
	resp, err := o.post(ctx, form)
	if err != nil {
		return err
	}
	now := time.Now()
	o.cur = Token{Access: resp.AccessToken, Issued: now, Expiry: now.Add(time.Duration(resp.ExpiresIn) * time.Second)}
	if resp.ExpiresIn <= 0 {
		o.cur.Expiry = now.Add(time.Hour)
	}
	if resp.RefreshToken != "" && resp.RefreshToken != rt {
		o.pending = resp.RefreshToken // saved by Token; kept for the next refresh until then
	}
	return nil
}

func (o *OAuth2) post(ctx context.Context, form url.Values) (tokenResponse, error) {
	var tr tokenResponse
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return tr, fmt.Errorf("token endpoint: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	hc := o.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	res, err := hc.Do(req)
	if err != nil {
		return tr, fmt.Errorf("token endpoint: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return tr, fmt.Errorf("token endpoint: %w", err)
	}
	jsonErr := json.Unmarshal(body, &tr)
	switch {
	case res.StatusCode >= 500:
		return tr, fmt.Errorf("token endpoint: HTTP %d", res.StatusCode) // temporary: try again later
	case res.StatusCode != http.StatusOK || tr.Error != "":
		return tr, &RefreshError{Status: res.StatusCode, Code: tr.Error, Description: tr.Description}
	case jsonErr != nil || tr.AccessToken == "":
		return tr, fmt.Errorf("token endpoint: no access token in the answer (%v)", jsonErr)
	}
	return tr, nil
}

// saveError: a rotated refresh token could not be saved.
type saveError struct{ error }

func (e saveError) Unwrap() error { return e.error }

func isSaveError(err error) bool {
	var se saveError
	return errors.As(err, &se)
}

// xoauth2 is the SASL XOAUTH2 client (Google, Microsoft): go-sasl has OAUTHBEARER only.
type xoauth2 struct{ user, token string }

func (a xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + a.user + "\x01auth=Bearer " + a.token + "\x01\x01"), nil
}

// Next receives the server's error (a JSON object) when it refuses the token.
func (a xoauth2) Next(challenge []byte) ([]byte, error) {
	return nil, xoauth2Refused(challenge)
}

// xoauth2Refused is the server's reason for refusing a token.
type xoauth2Refused string

func (e xoauth2Refused) Error() string { return "XOAUTH2 token refused: " + string(e) }

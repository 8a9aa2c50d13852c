package imap_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replydesk/replydesk/mailin/imap"
	"github.com/replydesk/replydesk/mailin/imap/imaptest"
)

// memRefresh keeps the refresh token in memory, counting saves (the file version, with
// its fsyncs, is cmd/replydesk's and is tested there).
type memRefresh struct {
	mu    sync.Mutex
	token string
	saves int
	fail  bool
}

func (m *memRefresh) Load() (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.token, nil
}

func (m *memRefresh) Save(tok string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("disk full")
	}
	m.token, m.saves = tok, m.saves+1
	return nil
}

func (m *memRefresh) get() (string, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.token, m.saves
}

// TestXOAUTH2RefreshRotateRevoke: against an IMAP server that checks bearer tokens and
// cuts a session when its token expires, the poller refreshes before expiry (no session
// is ever cut), saves every rotated refresh token, and reports a revoked one in status
// at once and to the operator.
func TestXOAUTH2RefreshRotateRevoke(t *testing.T) {
	t.Parallel()
	ts := imaptest.StartTokenServer(t, 6*time.Second)
	mem := imaptest.StartMem(t, imaptest.MemOptions{XOAUTH2: ts.Check})
	s := &server{kind: "memserver", direct: mem.Addr, proxy: imaptest.StartProxy(t, mem.Addr)}
	rs := &memRefresh{token: "rt-0"}
	h := newHarness(t, s, func(c *imap.Config) {
		c.Password = ""
		c.Tokens = &imap.OAuth2{TokenURL: ts.URL, ClientID: "cid", ClientSecret: "csecret", Refresh: rs}
	}).start()
	appendMail := func(id string) { mem.Deliver(t, "INBOX", mail(id)) } // in XOAUTH2 mode LOGIN is refused
	appendMail("o1")
	waitFor(t, "the first message", func() bool { return h.accepted() == 1 })
	time.Sleep(7 * time.Second) // past the first token's expiry
	appendMail("o2")
	waitFor(t, "the second message, under a later token", func() bool { return h.accepted() == 2 })

	refresh, requests := ts.Current()
	saved, saves := rs.get()
	if requests < 2 || saved != refresh || saves != requests {
		t.Errorf("token endpoint used %d times, current refresh token %q; saved %q %d times: every rotation must be saved", requests, refresh, saved, saves)
	}
	if cuts := mem.ExpiredCuts(); cuts != 0 {
		t.Errorf("%d sessions outlived their token: refresh before expiry", cuts)
	}
	if m := h.mailbox(); m.LastError != "" {
		t.Errorf("an error while tokens were valid: %s", m.LastError)
	}

	ts.Revoke()
	waitFor(t, "the revoked token in status", func() bool {
		m := h.mailbox()
		return !m.Connected && strings.Contains(m.LastError, "invalid_grant")
	})
	waitFor(t, "the operator alert", func() bool {
		for _, a := range h.alertList() {
			if strings.HasPrefix(a, "imap_oauth") && strings.Contains(a, "invalid_grant") {
				return true
			}
		}
		return false
	})
}

// TestXOAUTH2LongBackfillRenews: a backfill that takes longer than an access token
// lives reconnects with a fresh token between batches (from the checkpoint), so no
// session outlives its token, and every message is taken in once.
func TestXOAUTH2LongBackfillRenews(t *testing.T) {
	t.Parallel()
	ts := imaptest.StartTokenServer(t, 8*time.Second) // renewed 2 s before expiry
	mem := imaptest.StartMem(t, imaptest.MemOptions{XOAUTH2: ts.Check})
	const n = 160
	for i := range n {
		mem.Deliver(t, "INBOX", mail(fmt.Sprintf("b%d", i)))
	}
	s := &server{kind: "memserver", direct: mem.Addr, proxy: imaptest.StartProxy(t, mem.Addr)}
	h := newHarness(t, s, func(c *imap.Config) {
		c.Password = ""
		c.BatchBytes = 1024 // about 4 messages a batch: 40 commits
		c.Tokens = &imap.OAuth2{TokenURL: ts.URL, ClientID: "cid", ClientSecret: "csecret", Refresh: &memRefresh{token: "rt-0"}}
	})
	h.store.delay = 250 * time.Millisecond // 40 commits: over 10 s, longer than a token lives
	h.start()
	waitFor(t, "the backfill", func() bool { return h.accepted() == n })
	if got := len(h.store.handed()); got != n {
		t.Errorf("handed %d messages to the store, want %d (none twice)", got, n)
	}
	if cuts := mem.ExpiredCuts(); cuts != 0 {
		t.Errorf("%d sessions outlived their token", cuts)
	}
	if logins := mem.Logins(); logins < 2 {
		t.Errorf("%d logins: the backfill was not renewed", logins)
	}
}

// TestOAuth2TokenSource: a token is reused while fresh and refreshed near expiry; a
// rotated refresh token that cannot be saved fails Token (loudly) until it is saved,
// and is not lost meanwhile.
func TestOAuth2TokenSource(t *testing.T) {
	t.Parallel()
	ts := imaptest.StartTokenServer(t, 4*time.Second)
	rs := &memRefresh{token: "rt-0"}
	o := &imap.OAuth2{TokenURL: ts.URL, ClientID: "cid", ClientSecret: "csecret", Refresh: rs}
	ctx := context.Background()
	a, err := o.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := o.Token(ctx)
	if a.Access != b.Access {
		t.Errorf("a fresh token was refreshed: %q then %q", a.Access, b.Access)
	}
	if renew := a.RenewAt(); !renew.Before(a.Expiry) || renew.Before(a.Expiry.Add(-2*time.Second)) {
		t.Errorf("renew at %v for expiry %v: want a little before", renew, a.Expiry)
	}
	time.Sleep(time.Until(a.RenewAt()) + 50*time.Millisecond)
	rs.mu.Lock()
	rs.fail = true
	rs.mu.Unlock()
	if _, err := o.Token(ctx); err == nil || !strings.Contains(err.Error(), "save the rotated refresh token") {
		t.Fatalf("unsaved rotation: %v", err)
	}
	rs.mu.Lock()
	rs.fail = false
	rs.mu.Unlock()
	c, err := o.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refresh, _ := ts.Current()
	if saved, _ := rs.get(); saved != refresh || c.Access == a.Access {
		t.Errorf("after the disk came back: saved %q, endpoint's current %q; token %q", saved, refresh, c.Access)
	}
}

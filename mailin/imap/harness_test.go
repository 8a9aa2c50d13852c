package imap_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/replydesk/replydesk/mailin"
	"github.com/replydesk/replydesk/mailin/imap"
	"github.com/replydesk/replydesk/mailin/imap/imaptest"
	"github.com/replydesk/replydesk/threads"
)

// server is one IMAP server under test, reached through a proxy that records the
// poller's commands (and hides capabilities when asked).
type server struct {
	kind    string // memserver, dovecot
	direct  string // for the mailbox owner's client
	proxy   *imaptest.Proxy
	restart func(t testing.TB)
}

// eachServer runs fn against go-imap's in-memory server and against a real Dovecot
// (skipped when Dovecot is not installed), in parallel.
func eachServer(t *testing.T, hide []string, fn func(t *testing.T, s *server)) {
	t.Run("memserver", func(t *testing.T) {
		t.Parallel()
		m := imaptest.StartMem(t, imaptest.MemOptions{})
		fn(t, &server{kind: "memserver", direct: m.Addr, proxy: imaptest.StartProxy(t, m.Addr, hide...), restart: m.Restart})
	})
	t.Run("dovecot", func(t *testing.T) {
		t.Parallel()
		d := imaptest.StartDovecot(t)
		fn(t, &server{kind: "dovecot", direct: d.Addr, proxy: imaptest.StartProxy(t, d.Addr, hide...), restart: d.Restart})
	})
}

func (s *server) owner(t testing.TB) *imaptest.Client { return imaptest.Dial(t, s.direct) }

// recordingStore is the real store, with a record of what the poller handed it and a
// way to make a commit fail before or after it happens (a crash on either side).
type recordingStore struct {
	*threads.Store
	mu          sync.Mutex
	fetched     []mailin.Fetched
	failBefore  int // fail this many commits with messages, storing nothing
	failAfter   int // commit, then fail this many: as if the process died before the move
	commitCalls int
	delay       time.Duration // each commit with messages takes at least this long (a slow disk)
}

var errInjected = errors.New("injected failure")

func (r *recordingStore) AcceptMailbox(ctx context.Context, cp mailin.Checkpoint, msgs []mailin.Fetched, skipped []mailin.Skipped) ([]mailin.Receipt, error) {
	r.mu.Lock()
	r.commitCalls++
	if len(msgs) > 0 && r.failBefore > 0 {
		r.failBefore--
		r.mu.Unlock()
		return nil, errInjected
	}
	delay := r.delay
	r.mu.Unlock()
	if len(msgs) > 0 {
		time.Sleep(delay)
	}
	rcs, err := r.Store.AcceptMailbox(ctx, cp, msgs, skipped)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		for _, m := range msgs {
			m.Raw = nil
			r.fetched = append(r.fetched, m)
		}
		if len(msgs) > 0 && r.failAfter > 0 {
			r.failAfter--
			return nil, errInjected
		}
	}
	return rcs, err
}

func (r *recordingStore) handed() []mailin.Fetched {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]mailin.Fetched(nil), r.fetched...)
}

// harness runs one poller over a real store in a temp dir.
type harness struct {
	t      testing.TB
	store  *recordingStore
	cfg    imap.Config
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	alerts []string
}

func openStore(t testing.TB) *threads.Store {
	t.Helper()
	st, err := threads.Open(threads.Config{DataDir: t.TempDir(), Name: "Support",
		Addresses: []threads.Address{{Email: "support@example.test", Queue: "support"}}}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func quietLog() *slog.Logger {
	if os.Getenv("IMAPTEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newHarness(t testing.TB, s *server, mod func(*imap.Config)) *harness {
	h := &harness{t: t, store: &recordingStore{Store: openStore(t)}}
	h.cfg = imap.Config{
		Server: s.proxy.Addr, TLS: imap.TLSNone, Username: imaptest.User, Password: imaptest.Password,
		Processed: "Processed", Address: "support@example.test", MaxMessageBytes: 1 << 20,
		PollInterval: 100 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		BatchBytes: 64 << 10, // several batches even for small tests: the pipeline runs
		Alert: func(kind, subject, text string) {
			h.mu.Lock()
			h.alerts = append(h.alerts, kind+": "+subject+": "+text)
			h.mu.Unlock()
		},
	}
	if mod != nil {
		mod(&h.cfg)
	}
	return h
}

// start runs the poller until stop (or the end of the test).
func (h *harness) start() *harness {
	h.t.Helper()
	p, err := imap.New(h.cfg, h.store, quietLog())
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() { defer close(h.done); p.Run(ctx) }()
	h.t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(20 * time.Second):
		h.t.Error("poller did not stop within 20s")
	}
	h.cancel = nil
}

func (h *harness) accepted() int64 {
	st, err := h.store.Status(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return st.Accepted
}

func (h *harness) mailbox() threads.MailboxStatus {
	list, err := h.store.MailboxStatus(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	for _, m := range list {
		if m.Mailbox == h.cfg.Key() {
			return m
		}
	}
	return threads.MailboxStatus{}
}

func (h *harness) alertList() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.alerts...)
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mail is a small message with its own Message-ID (and so its own bytes).
func mail(id string) string {
	return fmt.Sprintf("From: Customer <c-%s@example.com>\r\nTo: support@example.test\r\nSubject: test %s\r\n"+
		"Message-ID: <%s@example.com>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\nHello, this is %s.\r\n", id, id, id, id)
}

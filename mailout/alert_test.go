package mailout

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replydesk/replydesk/threads"
)

// The operator hears about each kind of failure at most once per period, across
// Alerter instances (processes) sharing the store; the mail is automatic and readable.
func TestOperatorAlertsAtMostOncePerPeriod(t *testing.T) {
	t.Parallel()
	store, err := threads.Open(threads.Config{DataDir: t.TempDir(), Name: "Support",
		Addresses: []threads.Address{{Email: "support@example.test", Queue: "support"}}},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	dir := t.TempDir()
	newAlerter := func(every time.Duration) *Alerter {
		return &Alerter{Operator: "ops@example.test", From: "support@example.test", Helpdesk: "Support",
			Claims: store, Transport: DirTransport{Dir: dir}, Every: every, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	a, b := newAlerter(time.Hour), newAlerter(time.Hour)
	for range 3 {
		a.Alert("set_aside", "mail could not be filed", "Message 4 was set aside: injected\nsecond line")
		b.Alert("set_aside", "mail could not be filed", "Message 5 was set aside")
	}
	a.Wait()
	b.Wait()
	a.Alert("outbox", "outbound mail keeps failing", "550 no such user")
	a.Wait()
	files := mailFiles(t, dir)
	if len(files) != 2 {
		t.Fatalf("%d alert mails, want 2 (one per kind)", len(files))
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"To: <ops@example.test>", "Subject: [Support] ", "Auto-Submitted: auto-generated", "was set aside"} {
		if !strings.Contains(string(raw), want) {
			t.Fatalf("alert mail lacks %q:\n%s", want, raw)
		}
	}

	// Once the period has passed, the next one goes out.
	c := newAlerter(time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	c.Alert("outbox", "outbound mail keeps failing", "still failing")
	c.Wait()
	if n := len(mailFiles(t, dir)); n != 3 {
		t.Fatalf("%d alert mails after the period, want 3", n)
	}
	// No operator configured: nothing at all.
	(&Alerter{Claims: store, Transport: DirTransport{Dir: dir}}).Alert("x", "y", "z")
}

func mailFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "[^.]*.eml")) // not the one being written
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// Mail that fails for good tells the operator, with the ticket and the reason.
func TestOutboxFailureTellsOperator(t *testing.T) {
	t.Parallel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := queuedStore(t, 2, quiet)
	defer store.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there: connection refused
	dir := t.TempDir()
	alerter := &Alerter{Operator: "ops@example.test", From: "support@example.test", Helpdesk: "Support",
		Claims: store, Transport: DirTransport{Dir: dir}, Log: quiet}
	tr := NewSMTPTransport(SMTPConfig{Addr: dead, TLS: "none", Hostname: "localhost"})
	defer tr.Close()
	outbox := NewOutbox(store, tr, RetryPolicy{Base: time.Millisecond, Max: time.Millisecond, MaxAttempts: 1}, quiet)
	outbox.SetAlert(alerter.Alert)
	if n, err := outbox.DeliverDue(context.Background()); err != nil || n != 2 {
		t.Fatalf("deliver: %d, %v", n, err)
	}
	alerter.Wait()
	files := mailFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("%d alert mails for two failed mails, want 1", len(files))
	}
	raw, _ := os.ReadFile(files[0])
	for _, want := range []string{"failed for good", "for ticket #", "refused"} {
		if !strings.Contains(string(raw), want) {
			t.Fatalf("alert lacks %q:\n%s", want, raw)
		}
	}
}

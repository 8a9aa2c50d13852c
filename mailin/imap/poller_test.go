package imap_test

import (
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/replydesk/replydesk/mailin/imap"
	"github.com/replydesk/replydesk/mailin/imap/imaptest"
)

// noPlainExpunge fails when the poller sent a plain EXPUNGE or CLOSE (both remove every
// \Deleted message, other clients' too).
func noPlainExpunge(t *testing.T, p *imaptest.Proxy) {
	t.Helper()
	if bad := p.Sent(`^\S+ (EXPUNGE|CLOSE)\b`); len(bad) > 0 {
		t.Errorf("plain EXPUNGE/CLOSE sent: %q", bad)
	}
	if bad := p.Sent(`^\S+ (UID )?FETCH .*BODY\[`); len(bad) > 0 {
		t.Errorf("a FETCH without PEEK sent (it marks mail \\Seen before it is stored): %q", bad)
	}
}

// TestBackfillThenIdle: mail already in the mailbox is taken in silently at the first
// sync; mail appended afterwards arrives through IDLE and is live; everything is moved
// to the processed mailbox with MOVE, after it was stored.
func TestBackfillThenIdle(t *testing.T) {
	t.Parallel()
	eachServer(t, nil, func(t *testing.T, s *server) {
		owner := s.owner(t)
		old := map[uint32]bool{}
		for i := range 5 {
			old[uint32(owner.Append("INBOX", mail(fmt.Sprintf("old%d", i))))] = true
		}
		h := newHarness(t, s, func(c *imap.Config) { c.PollInterval = time.Hour }).start() // IDLE or nothing
		waitFor(t, "the backfill", func() bool { return h.accepted() == 5 })
		waitFor(t, "idle mode in status", func() bool { return h.mailbox().Mode == "idle" })
		start := time.Now()
		for i := range 3 {
			owner.Append("INBOX", mail(fmt.Sprintf("new%d", i)))
		}
		waitFor(t, "the new mail", func() bool { return h.accepted() == 8 })
		t.Logf("%s: 3 appended messages stored %v after the first APPEND (IDLE)", s.kind, time.Since(start).Round(time.Millisecond))
		waitFor(t, "an empty INBOX", func() bool { return len(owner.Messages("INBOX")) == 0 })
		if got := len(owner.Messages("Processed")); got != 8 {
			t.Fatalf("Processed holds %d messages, want 8", got)
		}
		for _, f := range h.store.handed() {
			if f.Env.Live == old[f.UID] {
				t.Errorf("UID %d: live %v, but it was there at the first sync: %v", f.UID, f.Env.Live, old[f.UID])
			}
		}
		if len(s.proxy.Sent(`^\S+ IDLE$`)) == 0 || len(s.proxy.Sent(`^\S+ UID MOVE `)) == 0 {
			t.Errorf("no IDLE or no UID MOVE in %q", s.proxy.Commands())
		}
		noPlainExpunge(t, s.proxy)
		m := h.mailbox()
		if !m.Connected || m.LastOK == nil || m.LastUID < 8 || m.Stored != 8 || m.UIDValidity == 0 {
			t.Errorf("status: %+v", m)
		}
	})
}

// TestPollingWithoutIdle: a server without IDLE is polled.
func TestPollingWithoutIdle(t *testing.T) {
	t.Parallel()
	eachServer(t, []string{"IDLE", "IMAP4rev2"}, func(t *testing.T, s *server) {
		h := newHarness(t, s, nil).start()
		waitFor(t, "poll mode in status", func() bool { return h.mailbox().Mode == "poll" })
		owner := s.owner(t)
		for i := range 3 {
			owner.Append("INBOX", mail(fmt.Sprintf("p%d", i)))
		}
		waitFor(t, "the mail", func() bool { return h.accepted() == 3 })
		waitFor(t, "an empty INBOX", func() bool { return len(owner.Messages("INBOX")) == 0 })
		if idle := s.proxy.Sent(`^\S+ IDLE`); len(idle) > 0 {
			t.Errorf("IDLE sent to a server without it: %q", idle)
		}
		noPlainExpunge(t, s.proxy)
	})
}

// TestCopyFallbackWithoutMove: without MOVE, mail is copied, marked \Deleted and
// expunged by UID, one step after the other; a message another client marked \Deleted
// (here one too large to take, so it stays) is not expunged with it.
func TestCopyFallbackWithoutMove(t *testing.T) {
	t.Parallel()
	eachServer(t, []string{"MOVE", "IMAP4rev2"}, func(t *testing.T, s *server) {
		owner := s.owner(t)
		owner.Append("INBOX", mail("a"))
		big := owner.Append("INBOX", mail("big")+strings.Repeat("x", 4096), goimap.FlagDeleted)
		owner.Append("INBOX", mail("b"))
		h := newHarness(t, s, func(c *imap.Config) { c.MaxMessageBytes = 2048 }).start()
		waitFor(t, "two messages", func() bool { return h.accepted() == 2 })
		waitFor(t, "INBOX holding only the big one", func() bool {
			left := owner.Messages("INBOX")
			return len(left) == 1 && left[0].UID == big
		})
		if got := len(owner.Messages("Processed")); got != 2 {
			t.Fatalf("Processed holds %d, want 2", got)
		}
		if mv := s.proxy.Sent(`^\S+ (UID )?MOVE `); len(mv) > 0 {
			t.Errorf("MOVE sent to a server without it: %q", mv)
		}
		for _, want := range []string{`^\S+ UID COPY `, `^\S+ UID STORE \S+ \+FLAGS\.SILENT \(\\Deleted\)`, `^\S+ UID EXPUNGE \S+$`} {
			if len(s.proxy.Sent(want)) == 0 {
				t.Errorf("no %s in %q", want, s.proxy.Commands())
			}
		}
		for _, ex := range s.proxy.Sent(`^\S+ UID EXPUNGE `) {
			if strings.Contains(ex, fmt.Sprint(big)) || strings.Contains(ex, "*") {
				t.Errorf("UID EXPUNGE names more than the copied mail: %q (big is %d)", ex, big)
			}
		}
		noPlainExpunge(t, s.proxy)
	})
}

// TestFlagMode: without a processed mailbox, taken mail stays, flagged \Seen and
// $Replydesk; a restarted poller fetches none of it again.
func TestFlagMode(t *testing.T) {
	t.Parallel()
	eachServer(t, nil, func(t *testing.T, s *server) {
		owner := s.owner(t)
		for i := range 4 {
			owner.Append("INBOX", mail(fmt.Sprintf("f%d", i)))
		}
		flagMode := func(c *imap.Config) { c.Processed = "" }
		h := newHarness(t, s, flagMode).start()
		waitFor(t, "four messages", func() bool { return h.accepted() == 4 })
		waitFor(t, "all flagged", func() bool {
			msgs := owner.Messages("INBOX")
			for _, m := range msgs {
				if !m.Has(imap.KeywordTaken) || !m.Has(goimap.FlagSeen) {
					return false
				}
			}
			return len(msgs) == 4
		})
		h.stop()
		fetchesBefore := len(s.proxy.Sent(`BODY\.PEEK\[\]`))
		h2 := newHarness(t, s, flagMode)
		h2.store = h.store
		h2.start()
		owner.Append("INBOX", mail("f-late"))
		waitFor(t, "the late one", func() bool { return h.accepted() == 5 })
		if got := len(h.store.handed()); got != 5 {
			t.Errorf("the store was handed %d messages, want 5 (none refetched)", got)
		}
		if n := len(s.proxy.Sent(`BODY\.PEEK\[\]`)) - fetchesBefore; n != 1 {
			t.Errorf("%d body fetches after the restart, want 1 (the late message)", n)
		}
		noPlainExpunge(t, s.proxy)
	})
}

// TestUIDValidityChange: the mailbox is rebuilt (new UIDVALIDITY) holding the same
// messages and one more: the full rescan stores only the new one.
func TestUIDValidityChange(t *testing.T) {
	t.Parallel()
	eachServer(t, nil, func(t *testing.T, s *server) {
		owner := s.owner(t)
		owner.Create("Support")
		for i := range 3 {
			owner.Append("Support", mail(fmt.Sprintf("u%d", i)))
		}
		cfg := func(c *imap.Config) { c.Mailbox, c.Processed = "Support", "" }
		h := newHarness(t, s, cfg).start()
		waitFor(t, "three messages", func() bool { return h.accepted() == 3 })
		before := h.mailbox().UIDValidity
		h.stop()
		owner.Recreate("Support")
		for i := range 3 {
			owner.Append("Support", mail(fmt.Sprintf("u%d", i)))
		}
		owner.Append("Support", mail("u-new"))
		after := owner.UIDValidity("Support")
		if after == before {
			t.Fatalf("UIDVALIDITY did not change (%d)", after)
		}
		h2 := newHarness(t, s, cfg)
		h2.store = h.store
		h2.start()
		waitFor(t, "the rescan", func() bool {
			m := h.mailbox()
			return m.UIDValidity == after && m.LastUID == 4
		})
		if got := h.accepted(); got != 4 {
			t.Fatalf("%d messages stored after the rescan, want 4 (3 known + 1 new)", got)
		}
		waitFor(t, "all flagged again", func() bool {
			for _, m := range owner.Messages("Support") {
				if !m.Has(imap.KeywordTaken) {
					return false
				}
			}
			return true
		})
	})
}

// TestReconnectAfterServerRestart: the server goes away and comes back; the poller
// reconnects by itself, and status said it was not connected meanwhile.
func TestReconnectAfterServerRestart(t *testing.T) {
	t.Parallel()
	eachServer(t, nil, func(t *testing.T, s *server) {
		h := newHarness(t, s, nil).start()
		waitFor(t, "connected", func() bool { return h.mailbox().Connected })
		s.restart(t)
		waitFor(t, "the lost connection in status", func() bool {
			m := h.mailbox()
			return m.LastError != "" && m.LastErrorAt != nil
		})
		s.owner(t).Append("INBOX", mail("after-restart"))
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("commands: %q", s.proxy.Commands())
			}
		})
		waitFor(t, "the mail after the restart", func() bool { return h.accepted() == 1 })
		waitFor(t, "connected again", func() bool { return h.mailbox().Connected })
		if logins := len(s.proxy.Sent(`^\S+ LOGIN `)); logins < 2 {
			t.Errorf("%d logins, want a reconnect", logins)
		}
	})
}

// TestOversizeLeftOnServer: a message over the cap stays on the server, flagged, is
// listed by status with the reason, and the operator is told; the rest go on, and the
// checkpoint passes it.
func TestOversizeLeftOnServer(t *testing.T) {
	t.Parallel()
	eachServer(t, nil, func(t *testing.T, s *server) {
		owner := s.owner(t)
		owner.Append("INBOX", mail("s1"))
		big := owner.Append("INBOX", mail("big")+strings.Repeat("y", 8192))
		owner.Append("INBOX", mail("s2"))
		h := newHarness(t, s, func(c *imap.Config) { c.MaxMessageBytes = 4096 }).start()
		waitFor(t, "the two small ones", func() bool { return h.accepted() == 2 })
		waitFor(t, "the big one flagged", func() bool {
			left := owner.Messages("INBOX")
			return len(left) == 1 && left[0].UID == big && left[0].Has(goimap.FlagFlagged) && left[0].Has(imap.KeywordSkipped)
		})
		m := h.mailbox()
		if m.SkippedCount != 1 || len(m.Skipped) != 1 || m.Skipped[0].UID != uint32(big) || !strings.Contains(m.Skipped[0].Reason, "too large") {
			t.Fatalf("status does not list the big message: %+v", m)
		}
		if m.LastUID < uint32(big)+1 {
			t.Errorf("checkpoint %d did not pass the skipped UID %d", m.LastUID, big)
		}
		waitFor(t, "the operator alert", func() bool {
			for _, a := range h.alertList() {
				if strings.HasPrefix(a, "imap_skipped") && strings.Contains(a, fmt.Sprintf("UID %d", big)) {
					return true
				}
			}
			return false
		})
		owner.Append("INBOX", mail("s3")) // and the mailbox goes on
		waitFor(t, "the next one", func() bool { return h.accepted() == 3 })
	})
}

// TestWrongPasswordReported: a refused login is in status at once, and the operator is
// told when it keeps failing.
func TestWrongPasswordReported(t *testing.T) {
	t.Parallel()
	eachServer(t, nil, func(t *testing.T, s *server) {
		h := newHarness(t, s, func(c *imap.Config) { c.Password = "wrong" }).start()
		waitFor(t, "the refusal in status", func() bool {
			m := h.mailbox()
			return !m.Connected && strings.Contains(m.LastError, "LOGIN refused")
		})
		waitFor(t, "the alert", func() bool {
			for _, a := range h.alertList() {
				if strings.HasPrefix(a, "imap_login") {
					return true
				}
			}
			return false
		})
	})
}

var bodyFetch = regexp.MustCompile(`^\S+ UID FETCH (\S+) \(UID BODY\.PEEK\[\]\)`)

// TestCrashAfterCommitBeforeMove: the commit succeeds but the session ends before the
// move (as a crash would): the next session moves the stored mail without fetching it
// again, and nothing is stored twice.
func TestCrashAfterCommitBeforeMove(t *testing.T) {
	t.Parallel()
	eachServer(t, nil, func(t *testing.T, s *server) {
		owner := s.owner(t)
		for i := range 3 {
			owner.Append("INBOX", mail(fmt.Sprintf("c%d", i)))
		}
		h := newHarness(t, s, func(c *imap.Config) { c.BatchBytes = 1 << 20 })
		h.store.failAfter = 1
		h.start()
		waitFor(t, "an empty INBOX", func() bool { return len(owner.Messages("INBOX")) == 0 })
		if got := h.accepted(); got != 3 {
			t.Fatalf("%d stored, want 3", got)
		}
		if got := len(owner.Messages("Processed")); got != 3 {
			t.Fatalf("Processed holds %d, want 3", got)
		}
		if n := len(s.proxy.Sent(bodyFetch.String())); n != 1 {
			t.Errorf("%d body fetches, want 1: the stored mail is moved, not fetched again", n)
		}
		if got := len(h.store.handed()); got != 3 {
			t.Errorf("handed %d messages to the store, want 3", got)
		}
	})
}

// TestCrashBeforeCommit: the commit fails (nothing stored, as if the process died
// before it): nothing was moved, and the next session fetches and stores it once.
func TestCrashBeforeCommit(t *testing.T) {
	t.Parallel()
	eachServer(t, nil, func(t *testing.T, s *server) {
		owner := s.owner(t)
		for i := range 3 {
			owner.Append("INBOX", mail(fmt.Sprintf("d%d", i)))
		}
		h := newHarness(t, s, func(c *imap.Config) { c.BatchBytes = 1 << 20 })
		h.store.failBefore = 1
		h.start()
		waitFor(t, "an empty INBOX", func() bool { return len(owner.Messages("INBOX")) == 0 })
		if got := h.accepted(); got != 3 {
			t.Fatalf("%d stored, want 3", got)
		}
		fetches, firstMove := 0, -1
		for _, l := range s.proxy.Commands() {
			if bodyFetch.MatchString(l) {
				fetches++
			}
			if strings.Contains(l, " UID MOVE ") && firstMove < 0 {
				firstMove = fetches
			}
		}
		if fetches != 2 || firstMove != 2 {
			t.Errorf("%d body fetches, the first move after fetch %d; want 2 fetches (the failed commit's and the refetch), the move after the second", fetches, firstMove)
		}
	})
}

// TestUnfetchableMessageLeftOnServer: a message the server cannot deliver holds back
// nothing: the rest are taken in; it is tried again at the next syncs, and after three
// attempts left on the server, flagged, listed by status, and the operator is told.
// (go-imap's in-memory server only: a real Dovecot cannot be made to fail one message.)
func TestUnfetchableMessageLeftOnServer(t *testing.T) {
	t.Parallel()
	var broken atomic.Uint32
	mem := imaptest.StartMem(t, imaptest.MemOptions{Broken: func(uid goimap.UID) bool { return uint32(uid) == broken.Load() }})
	s := &server{kind: "memserver", direct: mem.Addr, proxy: imaptest.StartProxy(t, mem.Addr)}
	owner := s.owner(t)
	owner.Append("INBOX", mail("ok1"))
	broken.Store(uint32(owner.Append("INBOX", mail("damaged"))))
	owner.Append("INBOX", mail("ok2"))
	h := newHarness(t, s, nil).start() // IDLE; a failed fetch is retried after PollInterval (100 ms here)
	waitFor(t, "the two good ones", func() bool { return h.accepted() == 2 })
	waitFor(t, "the damaged one left, flagged", func() bool {
		left := owner.Messages("INBOX")
		return len(left) == 1 && uint32(left[0].UID) == broken.Load() && left[0].Has(imap.KeywordSkipped)
	})
	m := h.mailbox()
	if m.SkippedCount != 1 || !strings.Contains(m.Skipped[0].Reason, "could not be fetched (3 attempts)") || m.LastUID < broken.Load() {
		t.Fatalf("status: %+v", m)
	}
	if n := len(s.proxy.Sent(bodyFetch.String())); n != 3 {
		t.Errorf("%d body fetches, want 3 (all three, then the damaged one twice more)", n)
	}
	waitFor(t, "the operator alert", func() bool {
		for _, a := range h.alertList() {
			if strings.HasPrefix(a, "imap_skipped") && strings.Contains(a, "could not be fetched") {
				return true
			}
		}
		return false
	})
	owner.Append("INBOX", mail("ok3"))
	waitFor(t, "the next one", func() bool { return h.accepted() == 3 })
}

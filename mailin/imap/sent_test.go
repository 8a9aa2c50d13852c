package imap_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/replydesk/replydesk/mailin"
	"github.com/replydesk/replydesk/mailin/imap"
	"github.com/replydesk/replydesk/mailin/imap/imaptest"
	"github.com/replydesk/replydesk/threads"
)

// sentMail is a reply the support account sent from its own mail client.
func sentMail(id string) string {
	return fmt.Sprintf("From: Support <support@example.test>\r\nTo: c-%s@example.com\r\nSubject: Re: test %s\r\n"+
		"Message-ID: <sent-%s@example.test>\r\nIn-Reply-To: <%s@example.com>\r\nDate: Mon, 2 Nov 2026 11:00:00 +0000\r\n\r\nDone, %s.\r\n",
		id, id, id, id, id)
}

func (h *harness) mailboxNamed(key string) threads.MailboxStatus {
	list, err := h.store.MailboxStatus(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	for _, m := range list {
		if m.Mailbox == key {
			return m
		}
	}
	return threads.MailboxStatus{}
}

// sameMessages fails unless the mailbox holds exactly want: the same UIDs, flags and bytes.
func sameMessages(t *testing.T, what string, got, want []imaptest.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d messages, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		gf, wf := flagSet(g.Flags), flagSet(w.Flags)
		if g.UID != w.UID || !bytes.Equal(g.Raw, w.Raw) || !slices.Equal(gf, wf) {
			t.Errorf("%s: message %d is UID %d flags %v, was UID %d flags %v (bytes equal: %v)",
				what, i, g.UID, gf, w.UID, wf, bytes.Equal(g.Raw, w.Raw))
		}
	}
}

func flagSet(flags []goimap.Flag) []string {
	var out []string
	for _, f := range flags {
		if !strings.EqualFold(string(f), `\Recent`) { // the server's, per session
			out = append(out, strings.ToLower(string(f)))
		}
	}
	slices.Sort(out)
	return out
}

// TestSentFolderReadOnly: with Sent set, the Sent folder's mail is taken in (path
// imap-sent, the support address as recipient, old mail silent and new mail live) and
// checkpointed, and the folder is never changed: every message keeps its UID, flags
// (read or not) and bytes, no command that changes a mailbox is sent, and the folder
// is opened with EXAMINE. A restart fetches nothing again, and a rebuilt Sent folder
// (new UIDVALIDITY) holding the same mail stores nothing twice.
func TestSentFolderReadOnly(t *testing.T) {
	t.Parallel()
	eachServer(t, nil, func(t *testing.T, s *server) {
		owner := s.owner(t)
		owner.Create("Sent")
		old := map[uint32]bool{}
		old[uint32(owner.Append("Sent", sentMail("s1"), goimap.FlagSeen))] = true
		old[uint32(owner.Append("Sent", sentMail("s2")))] = true // unread: it must stay unread
		h := newHarness(t, s, func(c *imap.Config) { c.Sent = "Sent" })
		sentKey := h.cfg.SentKey()
		if sentKey == h.cfg.Key() || !strings.HasSuffix(sentKey, "/Sent") {
			t.Fatalf("Sent folder's key %q, mailbox's %q", sentKey, h.cfg.Key())
		}
		h.start()
		waitFor(t, "the Sent folder's backfill", func() bool { return h.accepted() == 2 })
		live := owner.Append("Sent", sentMail("s3"))
		waitFor(t, "the new sent mail", func() bool { return h.accepted() == 3 })
		waitFor(t, "the Sent folder's checkpoint", func() bool {
			m := h.mailboxNamed(sentKey)
			return m.Connected && m.LastUID == uint32(live) && m.Stored == 3
		})
		for _, f := range h.store.handed() {
			if f.Env.Path != mailin.PathIMAPSent || !slices.Equal(f.Env.Rcpts, []string{"support@example.test"}) || f.Env.Live == old[f.UID] {
				t.Errorf("UID %d: path %q, rcpts %v, live %v (old mail is silent, new mail live)", f.UID, f.Env.Path, f.Env.Rcpts, f.Env.Live)
			}
		}
		before := owner.Messages("Sent")
		h.stop()

		h.start() // a restart: nothing fetched again
		owner.Append("Sent", sentMail("s4"))
		waitFor(t, "the sent mail after the restart", func() bool { return h.accepted() == 4 })
		h.stop()
		if got := len(h.store.handed()); got != 4 {
			t.Errorf("%d messages handed to the store for 4 in the Sent folder: the restart fetched again", got)
		}
		after := owner.Messages("Sent")
		sameMessages(t, "the Sent folder", after[:len(before)], before)
		if after[1].Has(goimap.FlagSeen) {
			t.Errorf("the unread sent mail was marked read: %v", after[1].Flags)
		}
		if len(owner.Messages("Processed")) != 0 || len(owner.Messages("INBOX")) != 0 {
			t.Errorf("the Sent folder's mail went elsewhere")
		}
		// The INBOX was empty: any change was the Sent folder's poller's.
		if bad := s.proxy.Sent(`(?i)^\S+ (UID )?(STORE|MOVE|COPY|EXPUNGE|APPEND|DELETE|CREATE|RENAME)\b|^\S+ (EXPUNGE|CLOSE)$`); len(bad) > 0 {
			t.Errorf("commands that change a mailbox were sent: %q", bad)
		}
		if len(s.proxy.Sent(`(?i)^\S+ EXAMINE "?Sent"?$`)) == 0 || len(s.proxy.Sent(`(?i)^\S+ SELECT "?Sent"?`)) > 0 {
			t.Errorf("the Sent folder was not opened read-only (EXAMINE): %q", s.proxy.Commands())
		}
		noPlainExpunge(t, s.proxy)

		// A rebuilt Sent folder (new UIDVALIDITY) with the same mail: a full rescan that
		// stores nothing twice.
		owner.Recreate("Sent")
		for _, m := range after {
			owner.Append("Sent", string(m.Raw))
		}
		handed := len(h.store.handed())
		h.start()
		waitFor(t, "the rescan", func() bool { return len(h.store.handed()) >= handed+len(after) })
		h.stop()
		if got := h.accepted(); got != 4 {
			t.Errorf("%d messages stored after the rescan, want 4", got)
		}
	})
}

// TestSentFolderWaitsForInbox: after an outage, a reply waiting in the Sent folder is
// stored only after the customer's message it answers, which waited in the INBOX (the
// INBOX's backlog takes several slow commits): filing, in the order of storing, then
// finds its ticket.
func TestSentFolderWaitsForInbox(t *testing.T) {
	t.Parallel()
	eachServer(t, nil, func(t *testing.T, s *server) {
		owner := s.owner(t)
		owner.Create("Sent")
		pad := strings.Repeat("padding line to make the message larger than a few KiB.\r\n", 500) // ~29 KiB
		for i := range 6 {
			owner.Append("INBOX", strings.Replace(mail(fmt.Sprintf("w%d", i)), "\r\n\r\n", "\r\n\r\n"+pad, 1))
		}
		owner.Append("Sent", sentMail("w5"))
		h := newHarness(t, s, nil)
		h.cfg.Sent = "Sent"
		h.store.delay = 100 * time.Millisecond // each commit: several batches of two
		h.start()
		waitFor(t, "both backlogs", func() bool { return h.accepted() == 7 })
		got := h.store.handed()
		if last := got[len(got)-1]; last.Env.Path != mailin.PathIMAPSent {
			var order []string
			for _, f := range got {
				order = append(order, fmt.Sprintf("%s:%d", f.Env.Path, f.UID))
			}
			t.Errorf("the reply was stored before the INBOX's backlog: %v", order)
		}
	})
}

// TestSentFolderValidate: the Sent folder must be another folder than the mailbox and
// the processed mailbox.
func TestSentFolderValidate(t *testing.T) {
	t.Parallel()
	base := imap.Config{Server: "imap.example.com:993", Username: "u", Password: "p", Address: "support@example.test", Processed: "Done"}
	for _, sent := range []string{"inbox", "done"} {
		c := base
		c.Sent = sent
		if errs := c.Validate(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "sent_mailbox") {
			t.Errorf("Sent %q: %v", sent, errs)
		}
	}
	c := base
	c.Sent = "Sent"
	if errs := c.Validate(); len(errs) != 0 {
		t.Errorf("Sent \"Sent\": %v", errs)
	}
	if base.SentKey() != "" || c.SentKey() != "imap://u@imap.example.com:993/Sent" {
		t.Errorf("SentKey: %q, %q", base.SentKey(), c.SentKey())
	}
}

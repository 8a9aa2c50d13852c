package threads

import (
	"context"
	"testing"
	"time"

	"github.com/replydesk/replydesk/mailin"
)

func imapEnv() mailin.Envelope {
	return mailin.Envelope{Path: mailin.PathIMAP, Remote: "imap.example.test:993", Rcpts: []string{"support@example.test"}, Live: true}
}

// TestAcceptMailboxCommitsMessagesWithCheckpoint: messages and checkpoint go in
// together; the same bytes again are duplicates; within a UIDVALIDITY the checkpoint
// never moves back, a new UIDVALIDITY replaces it; skipped messages are kept per
// UIDVALIDITY; status shows it all.
func TestAcceptMailboxCommitsMessagesWithCheckpoint(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, nil)
	ctx := context.Background()
	const box = "imap://support@example.test@imap.example.test:993/INBOX"
	if _, found, err := s.MailboxCheckpoint(ctx, box); err != nil || found {
		t.Fatalf("checkpoint of a new mailbox: found %v, %v", found, err)
	}
	msgs := []mailin.Fetched{
		{UID: 1, Env: imapEnv(), Raw: []byte(testMail("i1@x", "one"))},
		{UID: 2, Env: imapEnv(), Raw: []byte(testMail("i2@x", "two"))},
	}
	rcs, err := s.AcceptMailbox(ctx, mailin.Checkpoint{Mailbox: box, UIDValidity: 7, LastUID: 3, BackfillEnd: 3}, msgs,
		[]mailin.Skipped{{UID: 3, Size: 99 << 20, Reason: "too large"}})
	if err != nil || len(rcs) != 2 || rcs[0].Duplicate || rcs[1].Duplicate || rcs[0].ID == rcs[1].ID {
		t.Fatalf("first commit: %v %+v", err, rcs)
	}
	cp, found, err := s.MailboxCheckpoint(ctx, box)
	if err != nil || !found || cp != (mailin.Checkpoint{Mailbox: box, UIDValidity: 7, LastUID: 3, BackfillEnd: 3}) {
		t.Fatalf("checkpoint %+v found %v err %v", cp, found, err)
	}
	// A rescan under the same UIDVALIDITY: duplicates, and the checkpoint stays.
	rcs, err = s.AcceptMailbox(ctx, mailin.Checkpoint{Mailbox: box, UIDValidity: 7, LastUID: 1, BackfillEnd: 99}, msgs[:1], nil)
	if err != nil || !rcs[0].Duplicate {
		t.Fatalf("same bytes again: %v %+v", err, rcs)
	}
	if cp, _, _ = s.MailboxCheckpoint(ctx, box); cp.LastUID != 3 || cp.BackfillEnd != 3 {
		t.Fatalf("checkpoint moved back or backfill end changed: %+v", cp)
	}
	if st, _ := s.Status(ctx); st.Accepted != 2 {
		t.Fatalf("%d accepted, want 2", st.Accepted)
	}
	skipped, err := s.MailboxSkipped(ctx, box, 7)
	if err != nil || len(skipped) != 1 || skipped[0].UID != 3 || skipped[0].Reason != "too large" {
		t.Fatalf("skipped: %+v %v", skipped, err)
	}
	// A new UIDVALIDITY starts over, and forgets the old skipped list.
	if _, err := s.AcceptMailbox(ctx, mailin.Checkpoint{Mailbox: box, UIDValidity: 8, LastUID: 0, BackfillEnd: 0}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if cp, _, _ = s.MailboxCheckpoint(ctx, box); cp.UIDValidity != 8 || cp.LastUID != 0 || cp.BackfillEnd != 0 {
		t.Fatalf("after a new UIDVALIDITY: %+v", cp)
	}
	if skipped, _ = s.MailboxSkipped(ctx, box, 8); len(skipped) != 0 {
		t.Fatalf("skipped under the new UIDVALIDITY: %+v", skipped)
	}

	// State for status: an empty error keeps the last one.
	errAt := time.Now()
	if err := s.RecordMailbox(ctx, mailin.MailboxState{Mailbox: box, LastError: "LOGIN refused", LastErrorAt: errAt}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordMailbox(ctx, mailin.MailboxState{Mailbox: box, Connected: true, Mode: "idle", Waiting: 4, LastOK: time.Now()}); err != nil {
		t.Fatal(err)
	}
	list, err := s.MailboxStatus(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("mailbox status: %+v %v", list, err)
	}
	m := list[0]
	if !m.Connected || m.Mode != "idle" || m.Waiting != 4 || m.LastOK == nil || m.LastError != "LOGIN refused" ||
		m.UIDValidity != 8 || m.Stored != 2 || m.Updated == nil {
		t.Fatalf("mailbox status: %+v", m)
	}
}

// TestRecordMailboxBeforeFirstCommit: a poller that never got in (wrong password) has
// a status row but no checkpoint.
func TestRecordMailboxBeforeFirstCommit(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, nil)
	ctx := context.Background()
	if err := s.RecordMailbox(ctx, mailin.MailboxState{Mailbox: "imap://x@y:993/INBOX", LastError: "refused", LastErrorAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.MailboxCheckpoint(ctx, "imap://x@y:993/INBOX"); err != nil || found {
		t.Fatalf("checkpoint found %v (%v) before any commit", found, err)
	}
}

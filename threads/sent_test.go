package threads

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replydesk/replydesk/mailin"
)

// confirmingResponder confirms every new ticket (a real Message-ID, so that the mail
// replydesk sends can be recognised later) and records every event it is asked about.
type confirmingResponder struct {
	mu     sync.Mutex
	events []string
}

func (r *confirmingResponder) Decide(f Filed) ([]Intent, error) {
	r.mu.Lock()
	r.events = append(r.events, f.Event+" "+f.Message.MessageID)
	r.mu.Unlock()
	if f.Event != "opened" {
		return nil, nil
	}
	return []Intent{{Kind: "confirmation", Auto: true, From: "support@example.test", To: []string{f.Message.From},
		MessageID: fmt.Sprintf("conf-%d@example.test", f.Ticket.ID), Data: []byte("{}"), Subject: "[Support #" + fmt.Sprint(f.Ticket.ID) + "] " + f.Message.Subject}}, nil
}

func (*confirmingResponder) Compose(ToCompose) (Composed, error) { return Composed{}, nil }

func (r *confirmingResponder) asked() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

var sentAt = time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)

func sentStore(t *testing.T) (*Store, *confirmingResponder) {
	s := openTestStore(t, func(c *Config) { c.Agents = []string{"ana@example.test"} })
	r := &confirmingResponder{}
	s.SetResponder(r, nil)
	return s, r
}

// customerWrites: a customer writes to support and the ticket is filed (and confirmed).
func customerWrites(t *testing.T, s *Store, from, msgID, subject string, extra ...string) Ticket {
	t.Helper()
	raw := fmt.Sprintf("From: <%s>\r\nTo: support@example.test\r\nSubject: %s\r\nMessage-ID: <%s>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n", from, subject, msgID)
	for _, e := range extra {
		raw += e + "\r\n"
	}
	accept(t, s, raw+"\r\nPlease help: "+subject+"\r\n")
	process(t, s)
	tk, _ := filed(t, s, msgID)
	return tk
}

// sent accepts and files a message from the Sent folder, as the IMAP poller hands it over.
func sent(t *testing.T, s *Store, live bool, from, to, msgID, subject string, extra ...string) mailin.Receipt {
	t.Helper()
	raw := fmt.Sprintf("From: Support <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s>\r\nDate: Mon, 2 Nov 2026 12:00:00 +0000\r\n", from, to, subject, msgID)
	for _, e := range extra {
		raw += e + "\r\n"
	}
	raw += "\r\nWe fixed it for you.\r\n\r\nOn Mon, 2 Nov 2026 at 10:00, Alice <alice@example.com> wrote:\r\n> Please help\r\n"
	env := mailin.Envelope{Path: mailin.PathIMAPSent, Remote: "imap.example.test:993", Rcpts: []string{"support@example.test"},
		Received: sentAt, Live: live}
	rc, err := s.Accept(context.Background(), env, []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	process(t, s)
	return rc
}

func outboxRows(t *testing.T, s *Store) int64 {
	t.Helper()
	st, err := s.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	o := st.Outbox
	return o.Composing + o.Queued + o.Retrying + o.Failed + o.Sent
}

func ticket(t *testing.T, s *Store, id int64) Ticket {
	t.Helper()
	tk, err := s.Ticket(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func notFiled(t *testing.T, s *Store, rc mailin.Receipt, reason string) {
	t.Helper()
	m, err := s.InboxMessage(context.Background(), rc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != "not_filed" || m.Ticket != 0 || !strings.HasPrefix(m.Reason, NotFiledSent) || !strings.Contains(m.Reason, reason) {
		t.Errorf("inbox %d: state %q, ticket %d, reason %q; want not_filed for %q", rc.ID, m.State, m.Ticket, m.Reason, reason)
	}
}

// TestSentReplyFiledAsAgentReply: a reply the support account sent from its mail client
// (In-Reply-To the customer's message) is filed into that ticket as an agent reply, with
// an agent reply's effects (pending, first response; an agent From is assigned, the
// support account is not), and causes no mail: the Responder is never asked, and no
// outbox row appears. The customer's answer to it then threads by its headers.
func TestSentReplyFiledAsAgentReply(t *testing.T) {
	t.Parallel()
	s, r := sentStore(t)
	tk := customerWrites(t, s, "alice@example.com", "c1@example.com", "Export fails")
	asked, rows := len(r.asked()), outboxRows(t, s)
	sent(t, s, true, "support@example.test", "alice@example.com", "s1@mail.example.test", "Re: Export fails", "In-Reply-To: <c1@example.com>")
	_, m := filed(t, s, "s1@mail.example.test")
	after := ticket(t, s, tk.ID)
	if m.Kind != "agent" || m.Direction != "in" || m.MatchedBy != "headers" || !contains(m.Flags, "sent_folder") || m.Text != "We fixed it for you." {
		t.Errorf("filed as %s/%s by %q, flags %v, text %q", m.Direction, m.Kind, m.MatchedBy, m.Flags, m.Text)
	}
	if after.Status != "pending" || after.FirstResponse == nil || !after.FirstResponse.Equal(sentAt) || after.Assignee != "" {
		t.Errorf("ticket after the sent reply: status %s, first response %v, assignee %q; want pending, %v, none", after.Status, after.FirstResponse, after.Assignee, sentAt)
	}
	if got := r.asked(); len(got) != asked || outboxRows(t, s) != rows {
		t.Errorf("the sent reply caused mail: responder asked %v, outbox %d rows (was %d)", got[asked:], outboxRows(t, s), rows)
	}
	for _, p := range after.Participants {
		if p.Address == "support@example.test" {
			t.Errorf("the support address became a participant: %v", after.Participants)
		}
	}

	// From an agent's address (send-as): that agent is assigned.
	tk2 := customerWrites(t, s, "bob@example.com", "b1@example.com", "Login broken")
	sent(t, s, true, "ana@example.test", "bob@example.com", "s2@mail.example.test", "Re: Login broken", "References: <b1@example.com>")
	expectFiled(t, s, "s2@mail.example.test", tk2.ID, "headers")
	if got := ticket(t, s, tk2.ID); got.Assignee != "ana@example.test" || got.Status != "pending" {
		t.Errorf("agent's sent reply: assignee %q, status %s", got.Assignee, got.Status)
	}

	// The customer answers the reply they got from the mail client: the same ticket.
	customerWrites(t, s, "alice@example.com", "c2@example.com", "Re: Export fails", "In-Reply-To: <s1@mail.example.test>")
	expectFiled(t, s, "c2@example.com", tk.ID, "headers")
	if got := ticket(t, s, tk.ID); got.Status != "open" {
		t.Errorf("after the customer's answer: %s, want open", got.Status)
	}
}

// TestSentBackfillIsOnlyFiled: sent mail found at the first sync (not live) is filed
// into its ticket but changes nothing on it.
func TestSentBackfillIsOnlyFiled(t *testing.T) {
	t.Parallel()
	s, r := sentStore(t)
	tk := customerWrites(t, s, "alice@example.com", "c1@example.com", "Export fails")
	asked := len(r.asked())
	sent(t, s, false, "ana@example.test", "alice@example.com", "old@mail.example.test", "Re: Export fails", "In-Reply-To: <c1@example.com>")
	_, m := filed(t, s, "old@mail.example.test")
	got := ticket(t, s, tk.ID)
	if m.Kind != "agent" || got.Status != "open" || got.FirstResponse != nil || got.Assignee != "" || len(r.asked()) != asked {
		t.Errorf("backfilled sent mail: kind %s; ticket %s, first response %v, assignee %q; responder asked %v",
			m.Kind, got.Status, got.FirstResponse, got.Assignee, r.asked()[asked:])
	}
}

// TestSentCopyOfOwnMail: the Sent folder's copy of mail replydesk sent itself (Gmail and
// Microsoft 365 keep one of what is submitted to them) is stored, filed nowhere, and
// changes nothing.
func TestSentCopyOfOwnMail(t *testing.T) {
	t.Parallel()
	s, r := sentStore(t)
	tk := customerWrites(t, s, "alice@example.com", "c1@example.com", "Export fails")
	before, asked, rows := ticket(t, s, tk.ID), len(r.asked()), outboxRows(t, s)
	conf := fmt.Sprintf("conf-%d@example.test", tk.ID)
	rc := sent(t, s, true, "support@example.test", "alice@example.com", conf, fmt.Sprintf("[Support #%d] Export fails", tk.ID),
		"In-Reply-To: <c1@example.com>", "Auto-Submitted: auto-replied")
	if rc.Duplicate {
		t.Fatal("stored as a duplicate: the test's copy must have bytes of its own")
	}
	notFiled(t, s, rc, "a copy of mail replydesk sent itself")
	after := ticket(t, s, tk.ID)
	if after.MessageCount != before.MessageCount || after.Status != before.Status || !after.Updated.Equal(before.Updated) ||
		after.FirstResponse != nil || len(r.asked()) != asked || outboxRows(t, s) != rows {
		t.Errorf("the copy changed something: %+v -> %+v; responder %v; outbox %d -> %d", before, after, r.asked()[asked:], rows, outboxRows(t, s))
	}
	// And a second copy of a sent reply already filed (the same Message-ID, other bytes).
	sent(t, s, true, "support@example.test", "alice@example.com", "s1@mail.example.test", "Re: Export fails", "In-Reply-To: <c1@example.com>")
	rc = sent(t, s, true, "support@example.test", "alice@example.com", "s1@mail.example.test", "Re: Export fails", "In-Reply-To: <c1@example.com>", "X-Copy: 2")
	notFiled(t, s, rc, "another copy of a message already on ticket")
}

// TestSentUnmatchedOpensNoTicket: sent mail that answers no ticket (no known reply
// header; a subject tag naming no ticket, or one its recipients take no part in) is
// stored and filed nowhere: it never opens a ticket, and never lands in a stranger's.
func TestSentUnmatchedOpensNoTicket(t *testing.T) {
	t.Parallel()
	s, r := sentStore(t)
	tk := customerWrites(t, s, "alice@example.com", "c1@example.com", "Export fails")
	asked, before := len(r.asked()), ticket(t, s, tk.ID)
	cases := []struct {
		to, subject, header, reason string
	}{
		{"bob@example.com", "Lunch on Friday?", "X-None: 1", "it answers no ticket"},
		{"bob@example.com", "Re: a newsletter", "In-Reply-To: <never-seen@lists.example.org>", "it answers no ticket"},
		{"bob@example.com", "Re: [Support #99] hello", "X-None: 1", "the subject names #99, which does not exist"},
		{"bob@example.com", fmt.Sprintf("Re: [Support #%d] Export fails", tk.ID), "X-None: 1", "none of its recipients (bob@example.com) takes part"},
	}
	for i, c := range cases {
		rc := sent(t, s, true, "support@example.test", c.to, fmt.Sprintf("u%d@mail.example.test", i), c.subject, c.header)
		notFiled(t, s, rc, c.reason)
	}
	if n := countTickets(t, s); n != 1 {
		t.Errorf("%d tickets, want 1: sent mail opened a ticket", n)
	}
	if after := ticket(t, s, tk.ID); after.MessageCount != before.MessageCount || after.Status != "open" || len(r.asked()) != asked {
		t.Errorf("unmatched sent mail changed #%d (%d -> %d messages, %s) or caused mail %v", tk.ID, before.MessageCount, after.MessageCount, after.Status, r.asked()[asked:])
	}
}

// TestSentHeadersWinOverSubjectTag: a sent mail whose References name a message of
// ticket A but whose subject tag names ticket B lands in A by the headers (B is
// untouched, the disagreement noted); with the tag alone, and sent to B's customer, it
// lands in B by the subject.
func TestSentHeadersWinOverSubjectTag(t *testing.T) {
	t.Parallel()
	s, _ := sentStore(t)
	a := customerWrites(t, s, "alice@example.com", "a1@example.com", "Export fails")
	b := customerWrites(t, s, "bob@example.com", "b1@example.com", "Login broken")
	bBefore := ticket(t, s, b.ID)
	sent(t, s, true, "support@example.test", "alice@example.com", "x1@mail.example.test", fmt.Sprintf("Re: [Support #%d] Login broken", b.ID),
		"References: <unknown@example.net> <a1@example.com>")
	m := expectFiled(t, s, "x1@mail.example.test", a.ID, "headers")
	if !strings.Contains(strings.Join(m.Notes, "\n"), fmt.Sprintf("the subject names #%d, the reply headers #%d", b.ID, a.ID)) {
		t.Errorf("no conflict note: %q", m.Notes)
	}
	if got := ticket(t, s, b.ID); got.MessageCount != bBefore.MessageCount || got.Status != "open" {
		t.Errorf("#%d changed: %d -> %d messages, %s", b.ID, bBefore.MessageCount, got.MessageCount, got.Status)
	}
	sent(t, s, true, "support@example.test", "bob@example.com", "x2@mail.example.test", fmt.Sprintf("Re: [Support #%d] Login broken", b.ID))
	expectFiled(t, s, "x2@mail.example.test", b.ID, "subject")
	if got := ticket(t, s, b.ID); got.Status != "pending" {
		t.Errorf("#%d after the tagged sent reply: %s, want pending", b.ID, got.Status)
	}
}

// Hostile and broken mail in the Sent folder is one message's problem: raw 8-bit bytes
// and invalid UTF-8 in its header, a header of garbage, thousands of references, or a
// forged token in the body file nothing wrong, send nothing, and the reply after them
// still lands on its ticket.
func TestSentHostileMailStaysOneMessagesProblem(t *testing.T) {
	t.Parallel()
	s, _ := sentStore(t)
	tk := customerWrites(t, s, "alice@example.com", "alice-1@example.com", "Printer on fire")
	before := outboxRows(t, s)
	many := make([]string, 5000)
	for i := range many {
		many[i] = fmt.Sprintf("<ref%d@evil.example>", i)
	}
	for name, raw := range map[string]string{
		"8-bit header": "From: M\xfcller <m\xfcller@ex\xe4mple.com>\r\nTo: <alice@example.com>\r\nSubject: R\xe9 \xff\xfe\r\nIn-Reply-To: <alice-1@example.com\xff>\r\nMessage-ID: <h8@x>\r\n\r\nbody \xff\r\n",
		"garbage":      "\x00\x01\x02 no header at all \xff\r\n\r\n\x00",
		"many refs":    "From: <support@example.test>\r\nTo: <bob@example.com>\r\nSubject: fwd\r\nMessage-ID: <many@x>\r\nReferences: " + strings.Join(many, " ") + "\r\n\r\nhi\r\n",
		"forged token": "From: <support@example.test>\r\nTo: <alice@example.com>\r\nSubject: hi\r\nMessage-ID: <tok@x>\r\n\r\nref:r1-aaaaaaaaaaaaaaaa support+a1-aaaaaaa-bbbbbbbbbbbb@example.test\r\n",
	} {
		env := mailin.Envelope{Path: mailin.PathIMAPSent, Rcpts: []string{"support@example.test"}, Received: sentAt, Live: true}
		if _, err := s.Accept(context.Background(), env, []byte(raw)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	process(t, s)
	sent(t, s, true, "support@example.test", "alice@example.com", "reply-after@example.test", "Re: Printer on fire",
		"In-Reply-To: <alice-1@example.com>")
	st, err := s.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Unfiled != 0 || st.SetAsideCount != 0 {
		t.Errorf("status after the hostile Sent mail: %d unfiled, %d set aside", st.Unfiled, st.SetAsideCount)
	}
	if got, _ := filed(t, s, "reply-after@example.test"); got.ID != tk.ID {
		t.Errorf("the reply after the hostile mail landed in #%d, want #%d", got.ID, tk.ID)
	}
	if n := outboxRows(t, s); n != before {
		t.Errorf("Sent mail caused %d outbound mails", n-before)
	}
	tickets, err := s.Tickets(context.Background(), TicketFilter{})
	if err != nil || len(tickets) != 1 {
		t.Errorf("%d tickets (%v), want only alice's", len(tickets), err)
	}
}

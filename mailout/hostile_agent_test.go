package mailout

import (
	"bytes"
	"strings"
	"testing"

	"github.com/replydesk/replydesk/threads"
)

// Hostile senders and careless agents against the agent mail path (README "Working
// from your mail client"). TestDefect* tests fail because of a defect; TestHostile*
// tests pin down a security property that holds.

// rcptsOf lists every envelope recipient of the mail in got.
func rcptsOf(got map[string]threads.OutboxItem) []string {
	var out []string
	for _, it := range got {
		out = append(out, it.Rcpts...)
	}
	return out
}

// A stranger who writes an agent's address into From (no token, and DKIM failing at our
// trusted MTA) and names ticket #1 must not be able to add anyone to the ticket:
// otherwise every later agent reply on #1 is copied to the stranger. takesPart counts a
// From that merely names an agent as taking part, and addParticipants then adds the
// forged mail's To/Cc as "cc" participants, whom relay copies.
func TestDefectForgedAgentFromSubscribesStranger(t *testing.T) {
	t.Parallel()
	const afterAgentActed = "after ana has answered once (she is a participant then): "
	for name, forged := range map[string]string{
		// An agent who acted is a participant (role agent): participates alone does not
		// stop a forged From naming her.
		afterAgentActed + "subject tag": "From: Ana <ana@example.test>\r\nTo: support@example.test\r\nCc: mallory@evil.example\r\n" +
			"Subject: Re: [Support #1] Printer on fire\r\nMessage-ID: <forged-3@evil.example>\r\n\r\nadding a colleague\r\n",
		// The subject tag is only the ticket number: anyone can write it.
		"subject tag": "Authentication-Results: mx.example.test; dkim=fail header.d=example.test; dmarc=fail header.from=example.test\r\n" +
			"From: Ana <ana@example.test>\r\nTo: support@example.test\r\nCc: mallory@evil.example\r\n" +
			"Subject: Re: [Support #1] Printer on fire\r\nMessage-ID: <forged-1@evil.example>\r\n\r\nadding a colleague\r\n",
		// Alice's Message-ID is known to everyone she wrote to.
		"reply headers": "From: ana@example.test\r\nTo: support@example.test, mallory@evil.example\r\n" +
			"Subject: Re: Printer on fire\r\nIn-Reply-To: <alice-1@example.com>\r\nMessage-ID: <forged-2@evil.example>\r\n\r\nfyi\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := newAgentDesk(t)
			n := d.customerWrites()
			if strings.HasPrefix(name, afterAgentActed) {
				d.deliver("ana@example.test", agentReply(t, "ana@example.test", n, "Hi Alice, looking into it."))
			}
			d.deliver("mallory@evil.example", forged)
			for _, p := range d.ticket(1).Participants {
				if p.Address == "mallory@evil.example" {
					t.Errorf("a forged agent From made mallory a participant of #1 (role %s)", p.Role)
				}
			}
			got := d.deliver("ana@example.test", agentReply(t, "ana@example.test", n, "Hi Alice, your account number is 12345."))
			if _, ok := got["agent_reply:alice@example.com"]; !ok {
				t.Fatalf("not relayed: %v", keys(got))
			}
			if containsString(rcptsOf(got), "mallory@evil.example") {
				t.Errorf("the agent's reply to alice went to the stranger too: %v", keys(got))
			}
		})
	}
}

// A second copy of an agent's reply (the same Message-ID, other bytes: delivered to two
// of our addresses, as "one message to two addresses makes one ticket" allows) takes
// route's "duplicate" shortcut, which skips the agent check. It used to be filed as a
// *customer* message, reopen the pending ticket, and notify the agent of their own words
// as if the customer had written them (and, stored as kind customer, become the
// "customer's latest message" the next relay answers). A duplicate changes nothing and
// sends nothing.
func TestHostileDuplicateCopyChangesNothing(t *testing.T) {
	t.Parallel()
	d := newAgentDesk(t)
	n := d.customerWrites()
	raw := agentReply(t, "ana@example.test", n, "Hi Alice, fixed.")
	if got := d.deliver("ana@example.test", "Delivered-To: support@example.test\r\n"+raw); len(got) != 1 {
		t.Fatalf("first copy: %v", keys(got))
	}
	got := d.deliver("ana@example.test", "Delivered-To: billing@example.test\r\n"+raw)
	if len(got) != 0 {
		t.Errorf("the second copy of the agent's reply sent mail: %v", keys(got))
	}
	tk := d.ticket(1)
	if tk.Status != "pending" {
		t.Errorf("the second copy changed the ticket's status to %s", tk.Status)
	}
	for _, m := range tk.Messages {
		if m.Direction == "in" && m.From == "ana@example.test" && m.Kind == "customer" {
			t.Errorf("a copy of ana's reply is stored as a customer message (flags %v)", m.Flags)
		}
	}
	// A customer's copy to a second address notifies nobody a second time either.
	got = d.deliver("alice@example.com", "Delivered-To: billing@example.test\r\nFrom: Alice <alice@example.com>\r\nTo: support@example.test\r\nCc: Carol <carol@example.com>\r\n"+
		"Subject: Printer on fire\r\nMessage-ID: <alice-1@example.com>\r\n\r\nMy printer is on fire. Order 4411.\r\n")
	if len(got) != 0 || d.ticket(1).Status != "pending" {
		t.Errorf("a second copy of alice's first message: mail %v, status %s", keys(got), d.ticket(1).Status)
	}
}

// When quote stripping misses the quoted notification (here an HTML-only reply in the
// style of a mobile client: "-------- Original message --------" in <div>s), the relay
// used to carry the notification to the customer and every Cc: the command list and,
// worse, the agents' team token (ref:a1-...), with which a customer can file mail as an
// agent reply when From is not authenticated. An agent token never leaves for a customer.
//
// The same happens when an agent sends a reply with nothing typed and the signature on
// the body's first line: quote finds no signature there, and the whole quoted
// notification is relayed. (mailout/agent_test.go's agentReply writes exactly such a
// body whenever it is given extra headers, since no blank line then follows them: in
// TestCollisionNotice ana's text is read as a header field and her relayed "reply" is
// the quoted notification, token included.)
func TestHostileRelayNeverCarriesAgentToken(t *testing.T) {
	t.Parallel()
	for name, reply := range map[string]func(n threads.OutboxItem) string{
		"html-only mobile reply": func(n threads.OutboxItem) string {
			hdr, _, nhtml := parts(t, n.Raw)
			return "From: ana@example.test\r\nTo: " + hdr.Get("Reply-To") + "\r\nSubject: Re: " + hdr.Get("Subject") +
				"\r\nIn-Reply-To: " + hdr.Get("Message-Id") + "\r\nMessage-ID: <ana-mobile@example.test>\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
				`<html><body><div dir="auto">Hi Alice, fixed.</div><div dir="auto"><br></div>` +
				`<div align="left" dir="auto"><div>-------- Original message --------</div><div>From: Support &lt;support@example.test&gt; </div>` +
				`<div>Date: 11/2/26 10:00 (GMT+01:00) </div><div>To: Ana &lt;ana@example.test&gt; </div><div>Subject: [Support #1] Printer on fire </div><div><br></div></div>` +
				nhtml + "</body></html>\r\n"
		},
		// Nothing typed, the signature on the body's first line (no blank line above it).
		"sent with nothing typed": func(n threads.OutboxItem) string {
			return strings.Replace(agentReply(t, "ana@example.test", n, ""), "\r\n\r\n\r\n\r\n-- \r\n", "\r\n\r\n-- \r\n", 1)
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testRelayCarriesNoAgentToken(t, reply)
		})
	}
}

func testRelayCarriesNoAgentToken(t *testing.T, reply func(threads.OutboxItem) string) {
	d := newAgentDesk(t)
	n := d.customerWrites()
	got := d.deliver("ana@example.test", reply(n))
	out, ok := got["agent_reply:alice@example.com"]
	if !ok {
		return // not relayed (the agent told instead): nothing leaked
	}
	_, text, html := parts(t, out.Raw)
	for _, tok := range []string{d.store.Tokens().Team(1), d.store.Tokens().Agent(1, "ana@example.test")} {
		if strings.Contains(text, tok) || strings.Contains(html, tok) || bytes.Contains(out.Raw, []byte(tok)) {
			t.Errorf("the agents' token %s reached the customer:\n%s", tok, text)
		}
	}
}

// A customer's words never become header lines of the mail we write: an encoded CR LF
// in the subject, the display name or an attachment's name (RFC 2231) stays inside one
// header field of the notification, the confirmation and the relayed reply.
func TestHostileCustomerTextCannotInjectHeaders(t *testing.T) {
	t.Parallel()
	d := newAgentDesk(t)
	got := d.deliver("alice@example.com", "From: =?utf-8?q?Alice=0D=0ABcc=3A_x1=40evil.example?= <alice@example.com>\r\n"+
		"To: support@example.test\r\nSubject: =?utf-8?q?Printer=0D=0ABcc=3A_x2=40evil.example=0D=0A=0D=0Abody?=\r\n"+
		"Message-ID: <alice-inj@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"+
		"--b\r\nContent-Type: text/plain\r\n\r\nMy printer is on fire, see the photo.\r\n"+
		"--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename*=utf-8''a%0D%0ABcc%3A%20x3%40evil.example%0D%0A.png\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b--\r\n")
	n, ok := got["notification:ana@example.test"]
	if !ok {
		t.Fatalf("no notification: %v", keys(got))
	}
	got2 := d.deliver("ana@example.test", agentReply(t, "ana@example.test", n, "Hi Alice, we will look at it."))
	for k, it := range map[string]threads.OutboxItem{"notification": n, "confirmation": got["confirmation:alice@example.com"], "relay": got2["agent_reply:alice@example.com"]} {
		if len(it.Raw) == 0 {
			t.Fatalf("%s missing", k)
		}
		if bytes.Contains(bytes.ToLower(it.Raw), []byte("\nbcc:")) {
			t.Errorf("%s: a header line was injected:\n%s", k, it.Raw)
		}
		if hdr, _, _ := parts(t, it.Raw); len(hdr["Bcc"]) != 0 || len(hdr["Subject"]) != 1 {
			t.Errorf("%s: header fields %v", k, hdr)
		}
		for _, r := range it.Rcpts {
			if strings.Contains(r, "evil") {
				t.Errorf("%s goes to %s", k, r)
			}
		}
	}
}

// Commands are an agent's only: a customer's (or stranger's) "#resolve" and "#assign"
// at the top of their reply, through the customer token, change nothing; and an
// agent's #note reaches no customer, only the other agents.
func TestHostileCommandsAndNotesStayWithAgents(t *testing.T) {
	t.Parallel()
	d := newAgentDesk(t)
	n := d.customerWrites()
	tok := d.store.Tokens().Customer(1)
	d.deliver("alice@example.com", "From: alice@example.com\r\nTo: support+"+tok+"@example.test\r\nSubject: Re: x\r\nMessage-ID: <alice-cmd@example.com>\r\n\r\n#resolve\r\n#assign me\r\n#priority low\r\n\r\nthanks\r\n")
	if tk := d.ticket(1); tk.Status != "open" || tk.Assignee != "" || tk.Priority != "normal" {
		t.Errorf("a customer's #commands ran: %+v", tk)
	}
	got := d.deliver("ana@example.test", agentReply(t, "ana@example.test", n, "#note\r\nThis customer is a reseller; never tell them the price list."))
	for k, it := range got {
		for _, r := range it.Rcpts {
			if r != "bo@example.test" {
				t.Errorf("the note (%s) went to %s", k, r)
			}
		}
		if bytes.Contains(it.Raw, []byte("price list")) && !strings.HasPrefix(k, "agent_notice:") {
			t.Errorf("the note's text is in %s", k)
		}
	}
	// #note written after a prose line is prose, by the documented grammar: the only
	// way a '#note' line reaches the customer is below the agent's own text.
}

// A forged use of the agents' team token alerts only configured agents, never the
// forger or the customer; and only once an hour per ticket.
func TestHostileForgedTeamTokenAlertsOnlyAgents(t *testing.T) {
	t.Parallel()
	d := newAgentDesk(t)
	n := d.customerWrites()
	for i := 0; i < 3; i++ {
		raw := strings.Replace(agentReply(t, "mallory@evil.example", n, "#resolve\r\nrefund approved"), "Message-ID: <mallory-", "Message-ID: <mallory"+string(rune('a'+i))+"-", 1)
		got := d.deliver("mallory@evil.example", raw)
		for k, it := range got {
			if strings.HasPrefix(k, "agent_notice:") {
				if i > 0 {
					t.Errorf("alert #%d within the hour: %s", i+1, k)
				}
				for _, r := range it.Rcpts {
					if r != "ana@example.test" && r != "bo@example.test" {
						t.Errorf("the forged-token alert went to %s", r)
					}
				}
			}
			if strings.HasPrefix(k, "agent_reply:") || strings.Contains(k, "mallory") {
				t.Errorf("the forger caused %s", k)
			}
		}
	}
	if tk := d.ticket(1); tk.Status == "resolved" {
		t.Errorf("the forger's #resolve ran")
	}
}

// Loop safety of the agent mail: notifications and agent notices are marked
// auto-generated (RFC 3834: an autoresponder must not answer) with our address as
// envelope sender; a relayed reply is a person's answer (no Auto-Submitted) from our
// address; and an agent's out-of-office answer to a notice is kept, relayed nowhere.
func TestHostileAgentMailLoopSafety(t *testing.T) {
	t.Parallel()
	d := newAgentDesk(t)
	n := d.customerWrites()
	got := d.deliver("ana@example.test", agentReply(t, "ana@example.test", n, "#staus pending\r\n\r\nOn it."))
	notice, ok := got["agent_notice:ana@example.test"]
	if !ok {
		t.Fatalf("no notice: %v", keys(got))
	}
	for k, it := range map[string]threads.OutboxItem{"notification": n, "agent_notice": notice} {
		hdr, _, _ := parts(t, it.Raw)
		if hdr.Get("Auto-Submitted") != "auto-generated" || it.MailFrom != "support@example.test" {
			t.Errorf("%s: Auto-Submitted %q, envelope from %q", k, hdr.Get("Auto-Submitted"), it.MailFrom)
		}
	}
	ooo := "Auto-Submitted: auto-replied\r\n" + agentReply(t, "ana@example.test", notice, "I am out of the office until Monday.")
	if got := d.deliver("ana@example.test", ooo); len(got) != 0 {
		t.Errorf("an agent's out-of-office answer to a notice caused %v", keys(got))
	}
}

// A header that go-message cannot read (one line without a colon, or with a space in
// its name, anywhere among the sender's own fields) sends Parse to fallbackHeader, which
// recovers From, Message-ID and the reply headers but leaves p.Header empty: checkAgent
// used to find no Authentication-Results at all (checked=false) and skip the DKIM/DMARC
// check our trusted MTA failed, so whoever held an agent token (the ref: line of a quoted
// notification is enough) and forged From passed for the agent: #resolve ran and the
// text was relayed to the customer. Such a message never counts as an agent's.
func TestHostileMalformedHeaderNeverPassesForAgent(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"Bad Header: x\r\n", "junk line without colon\r\n"} {
		t.Run(bad, func(t *testing.T) {
			t.Parallel()
			d := newAgentDesk(t)
			n := d.customerWrites()
			raw := agentReply(t, "ana@example.test", n, "#resolve\r\nRefund approved: reply with your card number.")
			raw = "Authentication-Results: mx.example.test; dkim=fail header.d=example.test; dmarc=fail header.from=example.test\r\n" +
				strings.Replace(raw, "Subject:", bad+"Subject:", 1)
			got := d.deliver("mallory@evil.example", raw)
			if _, ok := got["agent_reply:alice@example.com"]; ok {
				t.Errorf("a forged reply with a malformed header was relayed to the customer: %v", keys(got))
			}
			if st := d.ticket(1).Status; st == "resolved" {
				t.Errorf("its #resolve ran")
			}
		})
	}
}

// A team reply token is the queue's: an agent of another queue who got hold of a
// notification (forwarded to them) cannot answer the customer or run commands with it,
// until the ticket is assigned to them.
func TestHostileTeamTokenOfAnotherQueue(t *testing.T) {
	t.Parallel()
	d := newAgentDeskWith(t, Agent{Email: "cy@example.test", Name: "Cy", Queues: []string{"billing"}})
	n := d.customerWrites()
	got := d.deliver("cy@example.test", agentReply(t, "cy@example.test", n, "#status resolved\n\nHi Alice, Cy from billing here."))
	if _, ok := got["agent_reply:alice@example.com"]; ok {
		t.Fatalf("an agent of another queue answered the customer with the queue's token: %v", keys(got))
	}
	tk := d.ticket(1)
	var flags []string
	for _, m := range tk.Messages {
		if m.From == "cy@example.test" {
			flags = m.Flags
		}
	}
	if tk.Status == "resolved" || !containsString(flags, "forged_agent") {
		t.Fatalf("status %s, Cy's reply flagged %v: want the ticket unchanged and the reply flagged forged_agent", tk.Status, flags)
	}
	d.deliver("ana@example.test", agentReply(t, "ana@example.test", n, "#assign cy@example.test"))
	if tk := d.ticket(1); tk.Assignee != "cy@example.test" {
		t.Fatalf("assignee %q after ana's #assign", tk.Assignee)
	}
	got = d.deliver("cy@example.test", agentReply(t, "cy@example.test", n, "Hi Alice, Cy here: it is sorted."))
	if _, ok := got["agent_reply:alice@example.com"]; !ok {
		t.Fatalf("the assignee's reply through the team token was not relayed: %v", keys(got))
	}
}

// An address that only Unicode-folds to an agent's (the Kelvin sign K, long ſ) is not
// that agent: with the agent's own token it is flagged, not relayed.
func TestHostileUnicodeFoldedAgentAddress(t *testing.T) {
	t.Parallel()
	d := newAgentDeskWith(t, Agent{Email: "kim@example.test", Name: "Kim", Queues: []string{"billing"}})
	d.customerWrites()
	tok := d.store.Tokens().Agent(1, "kim@example.test")
	got := d.deliver("x@evil.example", "From: \u212aim@example.test\r\nTo: support+"+tok+"@example.test\r\n"+
		"Subject: Re: [Support #1] Printer on fire\r\nIn-Reply-To: <alice-1@example.com>\r\nMessage-ID: <kelvin@evil.example>\r\n\r\n"+
		"Hi Alice, please send your password.\r\n")
	if _, ok := got["agent_reply:alice@example.com"]; ok {
		t.Fatalf("a From that folds to an agent's address was relayed: %v", keys(got))
	}
}

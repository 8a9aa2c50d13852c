package mailout

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/replydesk/replydesk/mailin"
	"github.com/replydesk/replydesk/templates"
	"github.com/replydesk/replydesk/threads"
)

// agentDesk is a store and Responder with two agents on the support queue, and our MTA
// (mx.example.test) trusted for Authentication-Results, as serve runs them.
type agentDesk struct {
	t     *testing.T
	store *threads.Store
	r     *Responder
	seen  map[int64]bool // outbox rows already returned by newMail
}

func newAgentDesk(t *testing.T) *agentDesk { return newAgentDeskWith(t) }

// newAgentDeskWith is newAgentDesk with more agents besides Ana and Bo (queue support).
func newAgentDeskWith(t *testing.T, more ...Agent) *agentDesk {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	agents := append([]Agent{{Email: "ana@example.test", Name: "Ana", Queues: []string{"support"}}, {Email: "bo@example.test", Name: "Bo", Queues: []string{"support"}}}, more...)
	cfg := threads.Config{DataDir: t.TempDir(), Name: "Support",
		Addresses:          []threads.Address{{Email: "support@example.test", Queue: "support"}},
		AgentNames:         map[string]string{},
		AgentQueues:        map[string][]string{},
		TrustedAuthservIDs: []string{"mx.example.test"}}
	for _, a := range agents {
		cfg.Agents = append(cfg.Agents, a.Email)
		cfg.AgentNames[a.Email], cfg.AgentQueues[a.Email] = a.Name, a.Queues
	}
	store, err := threads.Open(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	tpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	r := NewResponder(ResponderConfig{Helpdesk: "Support", DefaultLanguage: "en", OurAddresses: []string{"support@example.test"},
		Agents: agents, Log: quiet}, tpl, store.Tokens())
	store.SetResponder(r, nil)
	return &agentDesk{t: t, store: store, r: r, seen: map[int64]bool{}}
}

// deliver files one message and composes what it causes; it returns the new mail.
func (d *agentDesk) deliver(mailFrom, raw string) map[string]threads.OutboxItem {
	d.t.Helper()
	if _, err := d.store.Accept(context.Background(), mailin.Envelope{Path: mailin.PathSMTP, MailFrom: mailFrom,
		Rcpts: []string{"support@example.test"}, Live: true}, []byte(raw)); err != nil {
		d.t.Fatal(err)
	}
	if _, err := d.store.ProcessPending(context.Background()); err != nil {
		d.t.Fatal(err)
	}
	composeAll(d.t, d.store, d.r)
	items, err := d.store.DueMail(context.Background(), farFuture, 1000)
	if err != nil {
		d.t.Fatal(err)
	}
	out := map[string]threads.OutboxItem{}
	for _, it := range items {
		if !d.seen[it.ID] {
			d.seen[it.ID] = true
			out[it.Kind+":"+it.Rcpts[0]] = it
		}
	}
	return out
}

func (d *agentDesk) ticket(n int64) threads.Ticket {
	d.t.Helper()
	tk, err := d.store.Ticket(context.Background(), n)
	if err != nil {
		d.t.Fatal(err)
	}
	return tk
}

// customerWrites opens ticket 1 (Alice, copying Carol) and returns the agents'
// notification.
func (d *agentDesk) customerWrites() threads.OutboxItem {
	d.t.Helper()
	got := d.deliver("alice@example.com", "From: Alice <alice@example.com>\r\nTo: support@example.test\r\nCc: Carol <carol@example.com>\r\n"+
		"Subject: Printer on fire\r\nMessage-ID: <alice-1@example.com>\r\n\r\nMy printer is on fire. Order 4411.\r\n")
	n, ok := got["notification:ana@example.test"]
	if !ok || len(n.Rcpts) != 2 {
		d.t.Fatalf("the notification to both agents is missing: %v", got)
	}
	return n
}

// agentReply is a reply to mail we sent (its raw bytes), as a mail client writes it:
// to its Reply-To, In-Reply-To its Message-ID, the whole of it quoted, a signature.
func agentReply(t *testing.T, from string, to threads.OutboxItem, text string, extra ...string) string {
	hdr, body, _ := parts(t, to.Raw)
	quoted := "> " + strings.ReplaceAll(strings.TrimSpace(body), "\n", "\n> ")
	head := ""
	for _, e := range extra {
		head += e + "\r\n"
	}
	return fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: Re: %s\r\nMessage-ID: <%s-%d@mail.example.test>\r\nIn-Reply-To: %s\r\n%s\r\n%s\r\n\r\n-- \r\nAna Agent, Acme Support\r\n\r\nOn Mon, 2 Nov 2026 at 10:00, Support <support@example.test> wrote:\r\n%s\r\n",
		from, hdr.Get("Reply-To"), hdr.Get("Subject"), strings.Split(from, "@")[0], len(text), hdr.Get("Message-Id"),
		head, text, quoted)
}

func TestAgentReplyReachesTheCustomer(t *testing.T) {
	t.Parallel()
	d := newAgentDesk(t)
	n := d.customerWrites()
	got := d.deliver("ana@example.test", agentReply(t, "Ana <ana@example.test>", n, "Hi Alice,\r\n\r\nplease unplug it and send us a photo of the label."))
	out, ok := got["agent_reply:alice@example.com"]
	if !ok {
		t.Fatalf("nothing relayed to the customer: %v", keys(got))
	}
	hdr, text, html := parts(t, out.Raw)
	for k, want := range map[string]string{
		"From": `"Ana (Support)" <support@example.test>`, "To": "<alice@example.com>", "Cc": "<carol@example.com>",
		"In-Reply-To": "<alice-1@example.com>", "Reply-To": "support+" + d.store.Tokens().Customer(1) + "@example.test",
	} {
		if got := hdr.Get(k); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if !strings.HasPrefix(hdr.Get("Subject"), "[Support #1] Re: Printer on fire") || hdr.Get("Auto-Submitted") != "" {
		t.Errorf("subject %q, Auto-Submitted %q", hdr.Get("Subject"), hdr.Get("Auto-Submitted"))
	}
	if !strings.Contains(text, "please unplug it") || strings.Contains(text, "wrote on ticket") || strings.Contains(text, "Ana Agent, Acme") ||
		!strings.Contains(text, "ref:"+d.store.Tokens().Customer(1)) || !strings.Contains(html, "please unplug it") {
		t.Errorf("the customer gets more or less than the agent's new text:\n%s", text)
	}
	if len(out.Rcpts) != 2 || out.MailFrom != "support@example.test" {
		t.Errorf("envelope from %q to %v", out.MailFrom, out.Rcpts)
	}
	tk := d.ticket(1)
	if tk.Status != "pending" || tk.Assignee != "ana@example.test" || tk.FirstResponse == nil || tk.SLA != "met" {
		t.Errorf("ticket after the agent's reply: status %s, assignee %q, first response %v (%s)", tk.Status, tk.Assignee, tk.FirstResponse, tk.SLA)
	}
	// The customer's next reply goes to the assignee only.
	got = d.deliver("alice@example.com", agentReply(t, "Alice <alice@example.com>", out, "It worked, thanks!"))
	if nt, ok := got["notification:ana@example.test"]; !ok || len(nt.Rcpts) != 1 || d.ticket(1).Status != "open" {
		t.Errorf("after the customer's reply: %v, status %s; want one notification, to ana only", keys(got), d.ticket(1).Status)
	}
}

func TestAgentCommands(t *testing.T) {
	t.Parallel()
	t.Run("resolve alone sends nothing", func(t *testing.T) {
		t.Parallel()
		d := newAgentDesk(t)
		n := d.customerWrites()
		got := d.deliver("ana@example.test", agentReply(t, "ana@example.test", n, "#resolve"))
		if len(got) != 0 || d.ticket(1).Status != "resolved" {
			t.Fatalf("#resolve: mail %v, status %s", keys(got), d.ticket(1).Status)
		}
	})
	t.Run("a bad command changes and relays nothing, and the agent is told", func(t *testing.T) {
		t.Parallel()
		d := newAgentDesk(t)
		n := d.customerWrites()
		got := d.deliver("ana@example.test", agentReply(t, "ana@example.test", n, "#staus pending\r\n#priority high\r\n\r\nWe are on it."))
		notice, ok := got["agent_notice:ana@example.test"]
		if len(got) != 1 || !ok {
			t.Fatalf("mail after a bad command: %v", keys(got))
		}
		_, text, _ := parts(t, notice.Raw)
		if !strings.Contains(text, "#staus") || !strings.Contains(text, "did you mean #status") || !strings.Contains(text, "received nothing") {
			t.Errorf("the notice does not say what was wrong:\n%s", text)
		}
		if tk := d.ticket(1); tk.Status != "open" || tk.Priority != "normal" || tk.Assignee != "" {
			t.Errorf("ticket changed: %+v", tk)
		}
	})
	t.Run("note is internal; the other agents are told", func(t *testing.T) {
		t.Parallel()
		d := newAgentDesk(t)
		n := d.customerWrites()
		got := d.deliver("ana@example.test", agentReply(t, "ana@example.test", n, "#priority urgent\r\n#note\r\nThe customer is a reseller; check their contract first."))
		notice, ok := got["agent_notice:bo@example.test"]
		if len(got) != 1 || !ok || len(notice.Rcpts) != 1 {
			t.Fatalf("mail after a note: %v", keys(got))
		}
		if _, text, _ := parts(t, notice.Raw); !strings.Contains(text, "reseller") {
			t.Errorf("the note is not in the notice:\n%s", text)
		}
		tk := d.ticket(1)
		var kind string
		for _, m := range tk.Messages {
			if m.Direction == "in" && m.From == "ana@example.test" {
				kind = m.Kind
			}
		}
		if tk.Priority != "urgent" || tk.Status != "open" || kind != "note" {
			t.Errorf("after the note: priority %s, status %s, ana's message stored as %q", tk.Priority, tk.Status, kind)
		}
	})
	t.Run("assign by name and status", func(t *testing.T) {
		t.Parallel()
		d := newAgentDesk(t)
		n := d.customerWrites()
		d.deliver("ana@example.test", agentReply(t, "ana@example.test", n, "#assign Bo\r\n#status pending\r\n#category technical"))
		tk := d.ticket(1)
		if tk.Assignee != "bo@example.test" || tk.Status != "pending" || tk.Category != "technical" {
			t.Fatalf("after #assign Bo, #status pending, #category technical: %+v", tk)
		}
		var set []string
		for _, e := range tk.History {
			if e.Kind == "set" && e.Actor == "ana@example.test" {
				set = append(set, e.Detail)
			}
		}
		if len(set) != 3 {
			t.Errorf("history of the changes by ana: %v", set)
		}
	})
}

// Forged and failed agents: stored and flagged, nothing relayed, no command run, and
// the right people told.
func TestForgedAndFailedAgents(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		from, flag, told string
		mangle           func(d *agentDesk, raw string) string
	}{
		"From spoofed, no token": {from: "ana@example.test", told: "",
			mangle: func(d *agentDesk, raw string) string {
				raw = strings.Replace(raw, "To: "+headerOf(raw, "To"), "To: support@example.test", 1)
				return refLine.ReplaceAllString(raw, "")
			}},
		"another agent's token": {from: "bo@example.test", flag: "forged_agent", told: "ana@example.test",
			mangle: func(d *agentDesk, raw string) string {
				return strings.Replace(raw, headerOf(raw, "To"), "support+"+d.store.Tokens().Agent(1, "ana@example.test")+"@example.test", 1)
			}},
		"a valid token from a non-agent": {from: "mallory@evil.example", flag: "forged_agent", told: "bo@example.test"},
		"token for another ticket": {from: "ana@example.test", flag: "agent_check_failed", told: "ana@example.test",
			mangle: func(d *agentDesk, raw string) string {
				d.deliver("dave@example.com", "From: dave@example.com\r\nTo: support@example.test\r\nSubject: other\r\nMessage-ID: <dave@example.com>\r\n\r\nAnother problem entirely.\r\n")
				return strings.Replace(raw, headerOf(raw, "To"), "support+"+d.store.Tokens().Agent(2, "ana@example.test")+"@example.test", 1)
			}},
		"DKIM failed at our MTA": {from: "ana@example.test", flag: "agent_check_failed", told: "ana@example.test",
			mangle: func(d *agentDesk, raw string) string {
				return "Authentication-Results: mx.example.test; dkim=fail header.d=example.test; dmarc=fail header.from=example.test\r\n" + raw
			}},
		"out-of-office": {from: "ana@example.test", flag: "auto_generated", told: "",
			mangle: func(d *agentDesk, raw string) string { return "Auto-Submitted: auto-replied\r\n" + raw }},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := newAgentDesk(t)
			n := d.customerWrites()
			raw := agentReply(t, c.from, n, "#resolve\r\nRefund approved, here are the details of your account.")
			if c.mangle != nil {
				raw = c.mangle(d, raw)
			}
			got := d.deliver(c.from, raw)
			for k := range got {
				if strings.HasPrefix(k, "agent_reply:") || strings.HasPrefix(k, "confirmation:") && strings.Contains(k, "alice") {
					t.Errorf("relayed: %s", k)
				}
			}
			var m threads.Message
			list, _ := d.store.Tickets(context.Background(), threads.TicketFilter{})
			for _, tk := range list {
				tk = d.ticket(tk.ID)
				if tk.Status == "resolved" || tk.Assignee != "" {
					t.Errorf("a command ran on #%d: status %s, assignee %q", tk.ID, tk.Status, tk.Assignee)
				}
				for _, x := range tk.Messages {
					if x.Direction == "in" && x.From == strings.ToLower(c.from) && strings.Contains(x.Text, "Refund approved") {
						m = x
					}
				}
			}
			if m.Kind == "agent" || c.flag != "" && !containsString(m.Flags, c.flag) {
				t.Errorf("stored as %s with flags %v, want flag %q (notes %q)", m.Kind, m.Flags, c.flag, m.Notes)
			}
			told := false
			for k, it := range got {
				told = told || strings.HasPrefix(k, "agent_notice:") && containsString(it.Rcpts, c.told)
			}
			if c.told != "" && !told {
				t.Errorf("%s was not told: %v", c.told, keys(got))
			}
			for k := range got {
				if strings.HasPrefix(k, "agent_notice:") && c.told == "" {
					t.Errorf("someone was told: %s", k)
				}
			}
		})
	}
}

// A reply to a notification after another agent already answered goes out, and its
// author is told who answered first.
func TestCollisionNotice(t *testing.T) {
	t.Parallel()
	d := newAgentDesk(t)
	n := d.customerWrites()
	d.deliver("bo@example.test", agentReply(t, "bo@example.test", n, "Bo here: on it.", "Date: Mon, 2 Nov 2026 11:00:00 +0000"))
	got := d.deliver("ana@example.test", agentReply(t, "ana@example.test", n, "Ana here: on it too.", "Date: Mon, 2 Nov 2026 11:05:00 +0000"))
	notice, ok := got["agent_notice:ana@example.test"]
	if _, relayed := got["agent_reply:alice@example.com"]; !relayed || !ok {
		t.Fatalf("after the second reply: %v", keys(got))
	}
	if _, text, _ := parts(t, notice.Raw); !strings.Contains(text, "bo@example.test answered") {
		t.Errorf("the collision notice does not name who answered first:\n%s", text)
	}
}

var refLine = regexp.MustCompile(`ref:a[0-9a-z-]+`)

func keys(m map[string]threads.OutboxItem) []string {
	var out []string
	for k, it := range m {
		out = append(out, fmt.Sprintf("%s%v", k, it.Rcpts))
	}
	return out
}

func headerOf(raw, name string) string {
	for _, l := range strings.Split(raw, "\r\n") {
		if v, ok := strings.CutPrefix(l, name+": "); ok {
			return v
		}
	}
	return ""
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A relayed reply that fails for good (the smarthost's 5xx; a bounce takes the same
// path) is never silent: the agent who wrote it is told.
func TestUndeliverableReplyTellsTheAgent(t *testing.T) {
	t.Parallel()
	d := newAgentDesk(t)
	n := d.customerWrites()
	got := d.deliver("ana@example.test", agentReply(t, "ana@example.test", n, "Here is your refund."))
	relay, ok := got["agent_reply:alice@example.com"]
	if !ok {
		t.Fatalf("not relayed: %v", keys(got))
	}
	if err := d.store.MailFailed(context.Background(), relay.ID, "550 5.1.1 <alice@example.com>: no such user"); err != nil {
		t.Fatal(err)
	}
	got = d.deliver("x@example.com", "From: x@example.com\r\nTo: support@example.test\r\nSubject: unrelated\r\nMessage-ID: <x@example.com>\r\n\r\nSomething else entirely.\r\n")
	notice, ok := got["agent_notice:ana@example.test"]
	if !ok {
		t.Fatalf("the agent was not told: %v", keys(got))
	}
	if _, text, _ := parts(t, notice.Raw); !strings.Contains(text, "could not be delivered") || !strings.Contains(text, "no such user") {
		t.Errorf("the notice does not say what happened:\n%s", text)
	}
}

package threads

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/replydesk/replydesk/mailin"
)

func routingStore(t *testing.T) *Store {
	return openTestStore(t, func(c *Config) {
		c.Agents = []string{"ana@example.test"}
		c.ReopenDays = 30
	})
}

var placeholder = regexp.MustCompile(`\{\{(token|agent):([0-9]+)(?::([^}]+))?\}\}`)

// deliver accepts a fixture from testdata/threading (tokens signed with this store's
// key) and files it. from is the envelope sender ("" for a null sender).
func deliver(t *testing.T, s *Store, name, from string, rcpts ...string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata/threading", name))
	if err != nil {
		t.Fatal(err)
	}
	raw = placeholder.ReplaceAllFunc(raw, func(m []byte) []byte {
		p := placeholder.FindSubmatch(m)
		var n int64
		fmt.Sscan(string(p[2]), &n)
		if string(p[1]) == "agent" {
			return []byte(s.Tokens().Agent(n, string(p[3])))
		}
		return []byte(s.Tokens().Customer(n))
	})
	if len(rcpts) == 0 {
		rcpts = []string{"support@example.test"}
	}
	env := mailin.Envelope{Path: mailin.PathSMTP, MailFrom: from, Rcpts: rcpts, Received: time.Date(2026, 11, 6, 9, 0, 0, 0, time.UTC)}
	if _, err := s.Accept(context.Background(), env, raw); err != nil {
		t.Fatal(err)
	}
	process(t, s)
}

// filed finds a stored message by Message-ID and its ticket.
func filed(t *testing.T, s *Store, msgID string) (Ticket, Message) {
	t.Helper()
	list, err := s.Tickets(context.Background(), TicketFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range list {
		full, err := s.Ticket(context.Background(), tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range full.Messages {
			if m.MessageID == msgID {
				return full, m
			}
		}
	}
	t.Fatalf("message %s not filed", msgID)
	return Ticket{}, Message{}
}

func expectFiled(t *testing.T, s *Store, msgID string, ticket int64, matchedBy string) Message {
	t.Helper()
	tk, m := filed(t, s, msgID)
	if tk.ID != ticket || m.MatchedBy != matchedBy {
		t.Fatalf("%s: in #%d by %q, want #%d by %q (notes %q)", msgID, tk.ID, m.MatchedBy, ticket, matchedBy, m.Notes)
	}
	return m
}

func expectNote(t *testing.T, m Message, substr string) {
	t.Helper()
	for _, n := range m.Notes {
		if strings.Contains(n, substr) {
			return
		}
	}
	t.Fatalf("%s: no note containing %q in %q", m.MessageID, substr, m.Notes)
}

const customer = "alice@example.com"

func TestRouting(t *testing.T) {
	t.Parallel()
	for name, run := range map[string]func(t *testing.T, s *Store){
		"reply by headers": func(t *testing.T, s *Store) {
			deliver(t, s, "parent.eml", customer)
			deliver(t, s, "reply-headers.eml", customer)
			expectFiled(t, s, "reply@example.com", 1, "headers")
		},
		"reply arrives before its parent": func(t *testing.T, s *Store) {
			deliver(t, s, "reply-headers.eml", customer)
			deliver(t, s, "parent.eml", customer)
			expectFiled(t, s, "reply@example.com", 1, "new")
			expectFiled(t, s, "parent@example.com", 1, "headers")
		},
		"two customers reply to a newsletter we never saw": func(t *testing.T, s *Store) {
			deliver(t, s, "newsletter-reply-1.eml", "carol@example.net")
			deliver(t, s, "newsletter-reply-2.eml", "dave@example.net")
			expectFiled(t, s, "carol-news@example.net", 1, "new")
			expectFiled(t, s, "dave-news@example.net", 2, "new")
		},
		"token in Reply-To only (headers stripped)": func(t *testing.T, s *Store) {
			deliver(t, s, "parent.eml", customer)
			deliver(t, s, "reply-token-replyto.eml", customer, "support+"+s.Tokens().Customer(1)+"@example.test")
			expectFiled(t, s, "token-reply@mail.example.com", 1, "token")
		},
		"token in the footer only (headers stripped)": func(t *testing.T, s *Store) {
			deliver(t, s, "parent.eml", customer)
			deliver(t, s, "reply-token-footer.eml", customer)
			expectFiled(t, s, "footer-reply@mail.example.com", 1, "token")
		},
		"forged token is ignored and noted": func(t *testing.T, s *Store) {
			deliver(t, s, "parent.eml", customer)
			deliver(t, s, "forged-token.eml", "mallory@evil.example", "support+r1-aaaaaaaaaaaaa@example.test")
			expectNote(t, expectFiled(t, s, "forged@evil.example", 2, "new"), "bad signature")
		},
		"token naming a ticket that does not exist": func(t *testing.T, s *Store) {
			deliver(t, s, "reply-token-replyto.eml", customer)
			expectNote(t, expectFiled(t, s, "token-reply@mail.example.com", 1, "new"), "does not exist")
		},
		"stranger with a subject tag gets a new ticket": func(t *testing.T, s *Store) {
			deliver(t, s, "parent.eml", customer)
			deliver(t, s, "stranger-tag.eml", "mallory@evil.example")
			expectNote(t, expectFiled(t, s, "stranger-tag@evil.example", 2, "new"), "does not take part")
		},
		"participant with only a subject tag": func(t *testing.T, s *Store) {
			deliver(t, s, "parent.eml", customer)
			deliver(t, s, "participant-tag.eml", customer)
			expectFiled(t, s, "alice-tag@example.com", 1, "subject")
		},
		"stranger through reply headers joins, with a conflict note": func(t *testing.T, s *Store) {
			deliver(t, s, "parent.eml", customer)
			deliver(t, s, "stranger-headers.eml", "bob@example.org")
			expectNote(t, expectFiled(t, s, "bob-hijack@example.org", 1, "headers"), "conflict: bob@example.org does not take part")
		},
		"token and headers disagree: the token wins, noted": func(t *testing.T, s *Store) {
			deliver(t, s, "parent.eml", customer)
			deliver(t, s, "other-parent.eml", customer)
			deliver(t, s, "token-vs-headers.eml", customer)
			expectNote(t, expectFiled(t, s, "conflict@example.com", 1, "token"), "the reply token names #1, the reply headers #2")
		},
		"one message to two addresses makes one ticket": func(t *testing.T, s *Store) {
			deliver(t, s, "two-addresses-a.eml", "erin@example.com", "support@example.test")
			deliver(t, s, "two-addresses-b.eml", "erin@example.com", "billing@example.test")
			tk, _ := filed(t, s, "both@example.com")
			if tk.MessageCount != 2 || !contains(tk.Messages[1].Flags, "duplicate") {
				t.Fatalf("ticket %+v", tk)
			}
			if list, _ := s.Tickets(context.Background(), TicketFilter{}); len(list) != 1 {
				t.Fatalf("%d tickets, want 1", len(list))
			}
		},
		"reply within reopen_days reopens; later opens a new ticket": func(t *testing.T, s *Store) {
			deliver(t, s, "parent.eml", customer)
			if err := s.SetTicket(context.Background(), 1, map[string]string{"status": "resolved"}, "test"); err != nil {
				t.Fatal(err)
			}
			deliver(t, s, "reply-headers.eml", customer)
			if tk, _ := filed(t, s, "reply@example.com"); tk.ID != 1 || tk.Status != "open" {
				t.Fatalf("reply within the window: #%d %s, want #1 open", tk.ID, tk.Status)
			}
			s.SetTicket(context.Background(), 1, map[string]string{"status": "resolved"}, "test")
			s.wdb.Exec(`UPDATE tickets SET resolved_at = ? WHERE id = 1`, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC).Unix())
			deliver(t, s, "participant-tag.eml", customer)
			tk, m := filed(t, s, "alice-tag@example.com")
			if tk.ID != 2 || tk.Follows == nil || *tk.Follows != 1 {
				t.Fatalf("reply after reopen_days: %+v", tk)
			}
			expectNote(t, m, "follows up #1")
		},
		"automatic reply on a ticket is kept there and changes nothing": func(t *testing.T, s *Store) {
			deliver(t, s, "parent.eml", customer)
			s.SetTicket(context.Background(), 1, map[string]string{"status": "pending"}, "test")
			deliver(t, s, "out-of-office.eml", customer)
			tk, m := filed(t, s, "ooo@example.com")
			if tk.ID != 1 || tk.Status != "pending" || m.Kind != "auto" || !contains(m.Flags, "auto_generated") {
				t.Fatalf("out-of-office: ticket #%d %s, message %+v", tk.ID, tk.Status, m)
			}
		},
		"automatic mail that belongs nowhere opens a suspended ticket": func(t *testing.T, s *Store) {
			deliver(t, s, "unknown-autoreply.eml", "robot@vendor.example")
			tk, _ := filed(t, s, "robot@vendor.example")
			if tk.Status != "suspended" || tk.Due != nil {
				t.Fatalf("ticket %+v, want suspended with no due time", tk)
			}
		},
		"bounce of our mail marks it failed and the recipient bouncing": func(t *testing.T, s *Store) {
			deliver(t, s, "parent.eml", customer)
			if _, err := s.RecordOutbound(context.Background(), Outbound{Ticket: 1, Kind: "auto", MessageID: "confirmation-1@desk.example.test",
				From: "support@example.test", To: []string{customer}, Subject: "[Support #1] Printer on fire"}); err != nil {
				t.Fatal(err)
			}
			deliver(t, s, "dsn-ours.eml", "")
			tk, m := filed(t, s, "dsn1@mx.example.com")
			if tk.ID != 1 || m.Kind != "system" || !contains(m.Flags, "dsn") {
				t.Fatalf("bounce filed in #%d as %+v", tk.ID, m)
			}
			if list, _ := s.Tickets(context.Background(), TicketFilter{}); len(list) != 1 {
				t.Fatalf("a bounce of our mail opened a ticket")
			}
			var status string
			s.rdb.QueryRow(`SELECT delivery_status FROM messages WHERE message_id = 'confirmation-1@desk.example.test'`).Scan(&status)
			st, _ := s.Status(context.Background())
			if status != "failed" || st.Bouncing != 1 {
				t.Fatalf("outbound %q, %d bouncing", status, st.Bouncing)
			}
			deliver(t, s, "reply-headers.eml", customer) // a human writes again
			if st, _ := s.Status(context.Background()); st.Bouncing != 0 {
				t.Fatal("still bouncing after the customer wrote")
			}
		},
		"bounce of mail we never sent is flagged and suspended": func(t *testing.T, s *Store) {
			deliver(t, s, "dsn-unknown.eml", "")
			tk, m := filed(t, s, "dsn2@mx.example.org")
			if tk.Status != "suspended" || !contains(m.Flags, "dsn") || !contains(m.Flags, "auto_generated") {
				t.Fatalf("ticket %s, flags %q", tk.Status, m.Flags)
			}
		},
		"categories from keywords (es, pt) and from the +tag; SLA due": func(t *testing.T, s *Store) {
			deliver(t, s, "categories-es.eml", "fer@example.es")
			deliver(t, s, "categories-pt.eml", "joao@example.com.br")
			deliver(t, s, "categories-tag.eml", "gina@example.com", "support+feature@example.test")
			deliver(t, s, "newsletter-reply-1.eml", "carol@example.net")
			list, _ := s.Tickets(context.Background(), TicketFilter{})
			var got []string
			for _, tk := range list {
				got = append(got, fmt.Sprintf("%s/%s", tk.Category, tk.Due.Sub(tk.Created)))
			}
			if want := "billing/24h0m0s account/24h0m0s feature/48h0m0s other/48h0m0s"; strings.Join(got, " ") != want {
				t.Fatalf("categories %q, want %q", got, want)
			}
		},
		"agent reply by agent token: pending, assigned, first response": func(t *testing.T, s *Store) {
			deliver(t, s, "parent.eml", customer)
			deliver(t, s, "agent-reply.eml", "ana@example.test")
			tk, m := filed(t, s, "agent-reply@example.test")
			if m.Kind != "agent" || m.MatchedBy != "token" || tk.Status != "pending" || tk.Assignee != "ana@example.test" {
				t.Fatalf("ticket %s assignee %q, message %+v", tk.Status, tk.Assignee, m)
			}
			if ov, _ := s.Tickets(context.Background(), TicketFilter{Overdue: true}); len(ov) != 0 {
				t.Fatal("answered ticket listed as overdue")
			}
		},
		"any agent may reply through a team token, nobody else": func(t *testing.T, s *Store) {
			deliver(t, s, "parent.eml", customer)
			deliver(t, s, "team-token-stranger.eml", "mallory@evil.example")
			_, m := filed(t, s, "team-forged@evil.example")
			if m.Kind == "agent" || !contains(m.Flags, "forged_agent") {
				t.Fatalf("a stranger's reply through a team token: %+v", m)
			}
			deliver(t, s, "team-agent-reply.eml", "ana@example.test")
			tk, m := filed(t, s, "team-reply@example.test")
			if m.Kind != "agent" || m.MatchedBy != "token" || tk.Assignee != "ana@example.test" {
				t.Fatalf("ticket %s assignee %q, message %+v", tk.Status, tk.Assignee, m)
			}
		},
		"a reused Message-ID from another sender does not join": func(t *testing.T, s *Store) {
			deliver(t, s, "parent.eml", customer)
			deliver(t, s, "spoofed-id.eml", "mallory@evil.example")
			list, _ := s.Tickets(context.Background(), TicketFilter{})
			if len(list) != 2 || list[0].MessageCount != 1 {
				t.Fatalf("tickets %+v: the spoofed message got into #1", list)
			}
			full, _ := s.Ticket(context.Background(), 2)
			expectNote(t, full.Messages[0], "reuses the Message-ID")
		},
		"a late message merges the tickets its replies opened": func(t *testing.T, s *Store) {
			deliver(t, s, "parent.eml", customer)       // #1
			deliver(t, s, "bridge-child.eml", customer) // #2: its parent has not arrived
			deliver(t, s, "bridge.eml", customer)       // joins #1 by headers, and links #2
			tk, _ := filed(t, s, "bridge-child@example.com")
			if tk.ID != 1 || tk.MessageCount != 3 {
				t.Fatalf("after the bridge: child in #%d, #1 has %d messages", tk.ID, tk.MessageCount)
			}
			merged, _ := s.Ticket(context.Background(), 2)
			if merged.MergedInto == nil || *merged.MergedInto != 1 || len(merged.Messages) != 0 {
				t.Fatalf("#2 after the merge: %+v", merged)
			}
			if list, _ := s.Tickets(context.Background(), TicketFilter{}); len(list) != 1 {
				t.Fatalf("merged ticket still listed: %d tickets", len(list))
			}
		},
		"a stranger claiming an id a customer's reply names merges nothing": func(t *testing.T, s *Store) {
			deliver(t, s, "customer-cc-reply.eml", customer)                // #1, Alice's
			deliver(t, s, "stranger-first.eml", "bob@evil.example")         // #2, Bob's
			deliver(t, s, "stranger-claims-parent.eml", "bob@evil.example") // Bob's reply to #2, claiming the id
			alice, _ := filed(t, s, "alice-cc@example.com")
			if alice.ID != 1 || alice.MergedInto != nil || alice.MessageCount != 1 || alice.Customer != customer {
				t.Fatalf("Alice's ticket after Bob's mail: %+v", alice)
			}
			m := expectFiled(t, s, "colleague-note@corp.example", 2, "headers")
			expectNote(t, m, "does not take part in it; not merged")
			if list, _ := s.Tickets(context.Background(), TicketFilter{}); len(list) != 2 {
				t.Fatalf("%d tickets listed, want 2", len(list))
			}
		},
		"a token of a merged ticket lands where its messages went": func(t *testing.T, s *Store) {
			deliver(t, s, "parent.eml", customer)       // #1
			deliver(t, s, "bridge-child.eml", customer) // #2
			deliver(t, s, "bridge.eml", customer)       // merges #2 into #1
			deliver(t, s, "merged-token.eml", customer) // carries #2's token
			m := expectFiled(t, s, "merged-token@example.com", 1, "token")
			expectNote(t, m, "#2 was merged into #1")
		},
		"late list mail merges tickets that hold only that list's mail": func(t *testing.T, s *Store) {
			deliver(t, s, "newsletter-list-reply-1.eml", "carol@example.net") // #1, suspended
			deliver(t, s, "newsletter-list-reply-2.eml", "dave@example.net")  // #2, suspended
			deliver(t, s, "newsletter-reply-1.eml", "carol@example.net")      // #3, Carol's private reply
			deliver(t, s, "newsletter.eml", "news@lists.example.test")
			tk, _ := filed(t, s, "dave-list@example.net")
			if tk.ID != 1 || tk.MessageCount != 3 {
				t.Fatalf("list replies and the newsletter: #%d with %d messages, want #1 with 3", tk.ID, tk.MessageCount)
			}
			private, _ := filed(t, s, "carol-news@example.net")
			if private.ID != 3 || private.MessageCount != 1 || private.MergedInto != nil {
				t.Fatalf("the private reply was pulled into list mail: %+v", private)
			}
		},
		"agent token from someone else is not an agent reply": func(t *testing.T, s *Store) {
			deliver(t, s, "parent.eml", customer)
			deliver(t, s, "fake-agent.eml", "mallory@evil.example")
			tk, m := filed(t, s, "fake-agent@evil.example")
			if m.Kind != "customer" || !contains(m.Flags, "forged_agent") || tk.Assignee != "" {
				t.Fatalf("ticket %+v message %+v", tk, m)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			run(t, routingStore(t))
		})
	}
}

func TestOverdueTickets(t *testing.T) {
	t.Parallel()
	s := routingStore(t)
	deliver(t, s, "parent.eml", customer) // received 2026-11-06, due 48h later: long past
	ov, err := s.Tickets(context.Background(), TicketFilter{Overdue: true})
	if err != nil || len(ov) != 1 {
		t.Fatalf("overdue: %v %v", ov, err)
	}
	st, _ := s.Status(context.Background())
	if len(st.Overdue) != 1 || st.Overdue[0] != 1 {
		t.Fatalf("status overdue %v", st.Overdue)
	}
}

package threads

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replydesk/replydesk/mailin"
)

// Messages the parser used to read wrong (issue 8), one fixture each under
// testdata/readwrong, with the exact outcome expected.

func readWrong(t *testing.T, name string) (*Parsed, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata/readwrong", name))
	if err != nil {
		t.Fatal(err)
	}
	return Parse(raw, DefaultParseLimits()), raw
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

func eqList(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

func hasNote(t *testing.T, p *Parsed, sub string) {
	t.Helper()
	for _, n := range p.Notes {
		if strings.Contains(n, sub) {
			return
		}
	}
	t.Errorf("no note containing %q in %q", sub, p.Notes)
}

func bodyHas(t *testing.T, p *Parsed, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(p.Body, w) {
			t.Errorf("body %q lacks %q", p.Body, w)
		}
	}
}

func bodyLacks(t *testing.T, p *Parsed, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(p.Body, w) {
			t.Errorf("body %q holds %q", p.Body, w)
		}
	}
}

// oneLine: nothing that can reach a header or a template holds CR, LF or NUL.
func oneLine(t *testing.T, p *Parsed) {
	t.Helper()
	vals := []string{p.From, p.FromName, p.Subject, p.MessageID, p.ReportType}
	for _, a := range p.Attachments {
		vals = append(vals, a.Name, a.Type)
	}
	for _, v := range vals {
		if strings.ContainsAny(v, "\r\n\x00") {
			t.Errorf("%q holds CR, LF or NUL", v)
		}
	}
}

// fileOne files raw through the real store, as SMTP mail from envelope sender from,
// and returns its ticket.
func fileOne(t *testing.T, s *Store, raw []byte, from string) Ticket {
	t.Helper()
	env := mailin.Envelope{Path: mailin.PathSMTP, MailFrom: from, Rcpts: []string{"support@example.test"}, Received: time.Date(2026, 11, 6, 9, 0, 0, 0, time.UTC)}
	rc, err := s.Accept(context.Background(), env, raw)
	if err != nil {
		t.Fatal(err)
	}
	process(t, s)
	var id int64
	if err := s.rdb.QueryRow(`SELECT ticket_id FROM messages WHERE inbox_id = ?`, rc.ID).Scan(&id); err != nil {
		t.Fatalf("message not filed: %v", err)
	}
	tk, err := s.Ticket(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestReadWrong(t *testing.T) {
	t.Parallel()

	// 1. The customer is the angle-addr of From, never an address in the display name.
	t.Run("from display name that looks like an address", func(t *testing.T) {
		t.Parallel()
		p, raw := readWrong(t, "from-display-address.eml")
		eq(t, "From", p.From, "attacker@evil.com")
		eq(t, "FromName", p.FromName, "victim@bank.com")
		eqList(t, "Cc", p.Cc, []string{"spy@evil.com", "ana@example.com"})
		eq(t, "Malformed", p.Malformed, false)
		tk := fileOne(t, openTestStore(t, nil), raw, "attacker@evil.com")
		eq(t, "ticket customer", tk.Customer, "attacker@evil.com")
		for _, pt := range tk.Participants {
			if strings.Contains(pt.Address, "bank.com") {
				t.Errorf("participant %q comes from a display name", pt.Address)
			}
		}
	})
	t.Run("from encoded display name that looks like an address", func(t *testing.T) {
		t.Parallel()
		p, _ := readWrong(t, "from-encoded-display-address.eml")
		eq(t, "From", p.From, "attacker@evil.com")
		eq(t, "FromName", p.FromName, "victim@bank.com")
	})
	t.Run("from with a raw 8-bit address", func(t *testing.T) {
		t.Parallel()
		p, raw := readWrong(t, "from-8bit.eml")
		eq(t, "From", p.From, "")
		eq(t, "FromName", p.FromName, "Müller")
		hasNote(t, p, `From: unusable address "m\xfcller@example.com"`)
		oneLine(t, p)
		// With no usable From, the store falls back to the envelope sender.
		tk := fileOne(t, openTestStore(t, nil), raw, "mueller@example.com")
		eq(t, "ticket customer", tk.Customer, "mueller@example.com")
	})
	t.Run("from name and subject with encoded CR LF NUL", func(t *testing.T) {
		t.Parallel()
		p, _ := readWrong(t, "from-name-crlf.eml")
		eq(t, "From", p.From, "eve@example.com")
		eq(t, "FromName", p.FromName, "Eve Bcc: victim@example.com")
		eq(t, "Subject", p.Subject, "Hello Bcc: victim@example.com")
		oneLine(t, p)
	})

	// 2. Ids with whitespace inside are kept, without it, the same way everywhere.
	t.Run("message-id with a space", func(t *testing.T) {
		t.Parallel()
		p, _ := readWrong(t, "msgid-space.eml")
		eq(t, "MessageID", p.MessageID, "ABC123def@x400.example")
	})
	t.Run("message-id and references folded inside an id", func(t *testing.T) {
		t.Parallel()
		p, raw := readWrong(t, "msgid-folded.eml")
		eq(t, "MessageID", p.MessageID, "reply456@x400.example")
		eqList(t, "InReplyTo", p.InReplyTo, []string{"ABC123def@x400.example"})
		eqList(t, "References", p.References, []string{"root@x400.example", "ABC123def@x400.example"})
		s := openTestStore(t, nil)
		_, parent := readWrong(t, "msgid-space.eml")
		first := fileOne(t, s, parent, "user@x400.example")
		second := fileOne(t, s, raw, "user@x400.example")
		eq(t, "reply's ticket", second.ID, first.ID)
		eq(t, "reply matched by", second.Messages[len(second.Messages)-1].MatchedBy, "headers")
	})

	// 3. Automatic mail and bounces.
	classify := []struct {
		file       string
		null       bool // envelope sender <>
		auto       bool
		why        string
		dsn        bool
		customerTk bool // through the store: an open ticket, not a suspended one
	}{
		{file: "precedence-auto-reply.eml", auto: true, why: "Precedence: auto_reply"},
		{file: "return-path-mailer-daemon.eml", auto: true, why: "null return path (Return-Path: MAILER-DAEMON@mx.example.org)", dsn: true},
		{file: "return-path-postmaster.eml", auto: true, why: "null return path (Return-Path: postmaster@mx.example.org)"},
		{file: "from-null.eml", auto: true, why: "null sender (From: <>)", dsn: true},
		{file: "bounce-subject-es.eml", auto: true, why: `bounce subject "No se puede entregar" with a message/rfc822 part`, dsn: true},
		{file: "bounce-subject-pt.eml", auto: true, why: `bounce subject "Mensagem não entregue" with a text/rfc822-headers part`, dsn: true},
		{file: "bounce-subject-en-wording.eml", auto: true, why: `bounce subject "Delivery Status Notification" with delivery report wording ("this is the mail system at host", "message could not be delivered")`, dsn: true},
		// A delay warning is a delivery report, but no failure (deliveryFailed).
		{file: "delivery-warning.eml", auto: true, why: `delivery warning subject "Delivery warning" with SMTP status "451 4.4.1"`, dsn: true},
		// A customer's words: the subject alone is no evidence, nor parcels that could not
		// be delivered, prices or version numbers.
		{file: "customer-delivery-failed.eml", customerTk: true},
		// A customer forwarding a bounce wants an answer.
		{file: "customer-forwarded-bounce.eml", customerTk: true},
	}
	for _, c := range classify {
		t.Run("classify "+c.file, func(t *testing.T) {
			t.Parallel()
			p, raw := readWrong(t, c.file)
			auto, why := autoGenerated(p, c.null)
			eq(t, "autoGenerated", auto, c.auto)
			eq(t, "reason", why, c.why)
			eq(t, "deliveryReport", deliveryReport(p, c.null), c.dsn)
			if c.dsn {
				eq(t, "deliveryFailed", deliveryFailed(p), c.file != "delivery-warning.eml")
			}
			if c.customerTk {
				tk := fileOne(t, openTestStore(t, nil), raw, p.From)
				eq(t, "ticket status", tk.Status, "open")
			}
		})
	}
	t.Run("a delivery report that only says delayed", func(t *testing.T) {
		t.Parallel()
		p, _ := readWrong(t, "dsn-delayed.eml")
		eqList(t, "DeliveryActions", p.DeliveryActions, []string{"delayed"})
		eqList(t, "FailedRecipients", p.FailedRecipients, nil)
		eq(t, "ReportedID", p.ReportedID, "confirmation-3@desk.example.test")
		auto, why := autoGenerated(p, true)
		eq(t, "autoGenerated", auto, true)
		eq(t, "reason", why, "Auto-Submitted: auto-replied")
		eq(t, "deliveryReport", deliveryReport(p, true), true)
		eq(t, "deliveryFailed", deliveryFailed(p), false)

		// Through the store: kept on the ticket of the mail it is about, which is not
		// marked failed, and nobody is marked bouncing.
		s := openTestStore(t, nil)
		_, first := readWrong(t, "from-display-address.eml")
		fileOne(t, s, first, "attacker@evil.com")
		if _, err := s.RecordOutbound(context.Background(), Outbound{Ticket: 1, Kind: "auto", MessageID: "confirmation-3@desk.example.test",
			From: "support@example.test", To: []string{"slow@example.org"}, Subject: "[Support #1] We received your message"}); err != nil {
			t.Fatal(err)
		}
		_, raw := readWrong(t, "dsn-delayed.eml")
		tk := fileOne(t, s, raw, "")
		eq(t, "ticket", tk.ID, int64(1))
		var status string
		s.rdb.QueryRow(`SELECT delivery_status FROM messages WHERE message_id = 'confirmation-3@desk.example.test'`).Scan(&status)
		eq(t, "outbound status", status, "queued")
		st, err := s.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "bouncing", st.Bouncing, 0)
		var m Message
		for _, mm := range tk.Messages {
			if mm.MessageID == "delayed@mx.example.org" {
				m = mm
			}
		}
		if !contains(m.Flags, "dsn") || !contains(m.Notes, "delivery report for confirmation-3@desk.example.test (not a failure: delayed)") {
			t.Errorf("report filed as %+v", m)
		}
	})
	t.Run("null sender envelope", func(t *testing.T) {
		t.Parallel()
		p, _ := readWrong(t, "customer-delivery-failed.eml")
		auto, why := autoGenerated(p, true)
		eq(t, "autoGenerated", auto, true)
		eq(t, "reason", why, "null return path")
		eq(t, "deliveryReport", deliveryReport(p, true), true)
	})

	// 4. A header ending in a line of one space: the body is what follows.
	t.Run("header ends in a whitespace-only line", func(t *testing.T) {
		t.Parallel()
		p, _ := readWrong(t, "header-space-line.eml")
		eq(t, "Malformed", p.Malformed, false)
		eq(t, "Subject", p.Subject, "Space line")
		eq(t, "MessageID", p.MessageID, "space-line@example.com")
		eq(t, "Body", p.Body, "The body after a header that ended in a line with one space.\n\nSecond paragraph.\n")
		hasNote(t, p, "the header ended in a line of only whitespace")
	})

	// 5. An invalid Content-Type is text/plain (RFC 2045 §5.2).
	t.Run("top-level content-type without a subtype", func(t *testing.T) {
		t.Parallel()
		p, _ := readWrong(t, "content-type-invalid.eml")
		eq(t, "Body", p.Body, "Olá, the body of a message whose Content-Type is just \"text\".\n")
		eq(t, "attachments", len(p.Attachments), 0)
		eq(t, "MediaType", p.MediaType, "text/plain")
		hasNote(t, p, `invalid Content-Type "text": read as text/plain`)
	})
	t.Run("parts with invalid content-types", func(t *testing.T) {
		t.Parallel()
		p, _ := readWrong(t, "content-type-invalid-parts.eml")
		bodyHas(t, p, "First part, labelled <html>.", "Second part, labelled with garbage.")
		if len(p.Attachments) != 1 || p.Attachments[0] != (Attachment{Name: "report.pdf", Type: "application/pdf", Size: 9}) {
			t.Errorf("attachments %+v, want only report.pdf", p.Attachments)
		}
		hasNote(t, p, `invalid Content-Type "<html>": read as text/plain`)
		hasNote(t, p, `invalid Content-Type "??garbage??": read as text/plain`)
	})

	// 6. One rendering of each multipart/alternative.
	t.Run("alternative with two plain parts", func(t *testing.T) {
		t.Parallel()
		p, _ := readWrong(t, "alternative-two-plain.eml")
		bodyHas(t, p, "Señor, the invoice is missing (UTF-8 version).")
		bodyLacks(t, p, "ASCII version", "HTML version", "Second block")
		eq(t, "attachments", len(p.Attachments), 0)
	})

	// 7. A part labelled base64 that is not.
	t.Run("base64 label on text that is not base64", func(t *testing.T) {
		t.Parallel()
		p, _ := readWrong(t, "base64-not-base64.eml")
		bodyHas(t, p, "Real base64 text, decoded.", "Hello, this part is plain text although it says base64.", "Thanks and see you soon",
			"Decoded before the junk.")
		bodyLacks(t, p, "RGVjb2Rl", "Sent from")
		hasNote(t, p, "text/plain part: 20 characters after the end of its base64 text were left out")
		n := 0
		for _, note := range p.Notes {
			if strings.Contains(note, "labelled base64 but is not base64: kept undecoded") {
				n++
			}
		}
		eq(t, "notes about base64", n, 2)
		if !utf8Clean(p.Body) {
			t.Errorf("body holds decoded garbage: %q", p.Body)
		}
	})

	t.Run("base64 chunks, padding and junk", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			in      string
			want    string
			ok      bool
			dropped int
		}{
			{"SGk=\r\nSGk=", "HiHi", true, 0},    // chunks encoded apart, run together
			{"SGk", "Hi", true, 0},               // no final padding
			{"SGk=\r\n/w==", "Hi", true, 4},      // a second chunk that is no text
			{"SGk=\r\nignored", "Hi", true, 7},   // junk that looks like base64
			{"SGk=\r\n-- footer", "Hi", true, 8}, // junk that does not
			{"Hello, world", "", false, 0},
		} {
			dec, ok, dropped := decodeBase64Text([]byte(c.in), false, "utf-8")
			if string(dec) != c.want || ok != c.ok || dropped != c.dropped {
				t.Errorf("%q: %q %v %d, want %q %v %d", c.in, dec, ok, dropped, c.want, c.ok, c.dropped)
			}
		}
	})

	// 8. Raw 8-bit attachment names.
	t.Run("attachment names with raw 8-bit bytes", func(t *testing.T) {
		t.Parallel()
		p, _ := readWrong(t, "attachment-8bit-name.eml")
		var names, types []string
		for _, a := range p.Attachments {
			names, types = append(names, a.Name), append(types, a.Type)
		}
		eqList(t, "names", names, []string{"für.pdf", "Résumé.pdf", "notes Bcc: x@y.txt"})
		eqList(t, "types", types, []string{"application/pdf", "application/pdf", "text/plain"})
		eq(t, "Body", p.Body, "Three files attached.")
		oneLine(t, p)
	})
}

// utf8Clean: no replacement characters and no control characters but tab and newline.
func utf8Clean(s string) bool {
	for _, r := range s {
		if r == '\uFFFD' || (r < 0x20 && r != '\t' && r != '\n') || r == 0x7f {
			return false
		}
	}
	return true
}

package mailout

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replydesk/replydesk/mailin"
	"github.com/replydesk/replydesk/templates"
	"github.com/replydesk/replydesk/threads"
)

// logBuffer collects log lines from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// filingStore is a real store with a real Responder (one agent on the support queue), as
// serve runs it; the log goes to the returned buffer.
func filingStore(t *testing.T, cfg ResponderConfig) (*threads.Store, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store, err := threads.Open(threads.Config{DataDir: t.TempDir(),
		Addresses: []threads.Address{{Email: "support@example.test", Queue: "support"}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	tpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Helpdesk == "" {
		cfg.Helpdesk = "Support"
	}
	if cfg.DefaultLanguage == "" {
		cfg.DefaultLanguage = "en"
	}
	cfg.OurAddresses = append(cfg.OurAddresses, "support@example.test")
	if cfg.Agents == nil {
		cfg.Agents = []Agent{{Email: "ana@example.test", Name: "Ana", Queues: []string{"support"}}}
	}
	cfg.Log = log
	r := NewResponder(cfg, tpl, store.Tokens())
	store.SetResponder(r, nil)
	responderOf.Store(store, r)
	return store, logs
}

// responderOf remembers each filingStore's Responder, so deliverRaw can compose.
var responderOf sync.Map

// deliverRaw accepts one live message and files everything pending.
func deliverRaw(t *testing.T, store *threads.Store, mailFrom, raw string) {
	t.Helper()
	ctx := context.Background()
	if _, err := store.Accept(ctx, mailin.Envelope{Path: mailin.PathSMTP, MailFrom: mailFrom,
		Rcpts: []string{"support@example.test"}, Live: true}, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ProcessPending(ctx); err != nil {
		t.Fatalf("filing failed: %v", err)
	}
	if r, ok := responderOf.Load(store); ok {
		composeAll(t, store, r.(*Responder))
	}
}

// queued is every mail waiting in the outbox, by first recipient.
func queued(t *testing.T, store *threads.Store) map[string][]threads.OutboxItem {
	t.Helper()
	items, err := store.DueMail(context.Background(), farFuture, 10000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]threads.OutboxItem{}
	for _, it := range items {
		out[it.Rcpts[0]] = append(out[it.Rcpts[0]], it)
	}
	return out
}

// farFuture makes every queued mail due.
var farFuture = time.Now().Add(100 * 365 * 24 * time.Hour)

// parts reads the text and HTML alternatives of a composed mail (in a multipart/mixed
// when it carries attachments; those are left out).
func parts(t *testing.T, raw []byte) (hdr mail.Header, text, html string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(contentType string, body io.Reader)
	walk = func(contentType string, body io.Reader) {
		_, params, err := mime.ParseMediaType(contentType)
		if err != nil {
			t.Fatal(err)
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			ct := p.Header.Get("Content-Type")
			switch {
			case strings.HasPrefix(ct, "multipart/alternative"):
				walk(ct, p)
			case strings.HasPrefix(p.Header.Get("Content-Disposition"), "attachment"):
			case strings.HasPrefix(ct, "text/plain"):
				b, _ := io.ReadAll(p) // multipart decodes quoted-printable
				text = string(b)
			case strings.HasPrefix(ct, "text/html"):
				b, _ := io.ReadAll(p)
				html = string(b)
			}
		}
	}
	walk(msg.Header.Get("Content-Type"), msg.Body)
	return msg.Header, text, html
}

// TestBadSenderAddressDoesNotFailFiling (issue 8, defect 1): a sender address with a raw
// 8-bit byte (in From, in Sender, in the display name and the address) is filed into a
// ticket, gets no confirmation (with the reason in the log), and the agents are still
// notified. Before the fix the gate passed the lower-cased address (U+FFFD, valid) and
// Compose refused the raw one, which failed the filing transaction.
func TestBadSenderAddressDoesNotFailFiling(t *testing.T) {
	t.Parallel()
	for name, head := range map[string]string{
		"8-bit in From":                  "From: M\xfcller <m\xfcller@example.com>\r\n",
		"8-bit in Sender":                "Sender: m\xfcller@example.com\r\n",
		"8-bit in name and address":      "From: \"M\xfcller \xe4\xf6\" <m\xfcller\xff@example.com>\r\n",
		"control character in address":   "From: Bob <bo\x01b@example.com>\r\n",
		"UTF-8 address without SMTPUTF8": "From: Jörg <jörg@exämple.com>\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			store, logs := filingStore(t, ResponderConfig{})
			deliverRaw(t, store, "bounce@example.com", head+"To: support@example.test\r\nSubject: Invoice 7 charged twice\r\n"+
				"Message-ID: <bad-sender@example.com>\r\n\r\nInvoice 7 was charged twice this month, please refund one.\r\n")
			tk, err := store.Ticket(context.Background(), 1)
			if err != nil {
				t.Fatalf("the message was not filed: %v", err)
			}
			q := queued(t, store)
			if len(q) != 1 || len(q["ana@example.test"]) != 1 {
				t.Fatalf("outbox %v: want only the agent's notification (ticket %+v)", q, tk)
			}
			if !strings.Contains(logs.String(), "no auto-reply") {
				t.Fatalf("no reason logged:\n%s", logs)
			}
			_, text, _ := parts(t, q["ana@example.test"][0].Raw)
			if !strings.Contains(text, "charged twice") {
				t.Fatalf("notification:\n%s", text)
			}
		})
	}
}

// TestForgedDisplayNameStaysOneLine (issue 8, defect 5): a display name carrying encoded
// newlines, a link and a fake reference line renders as one greeting line; the only ref:
// line in the confirmation, text and HTML, is the real one. (net/mail refuses the issue's
// literal form, with ':' and '/' unencoded in a Q-word; a parser that decodes it anyway
// gives the same name as the B- and fully Q-encoded forms, else the name is dropped and
// the greeting shows the address. Either way the greeting is one line.)
func TestForgedDisplayNameStaysOneLine(t *testing.T) {
	t.Parallel()
	payload := "Bob\n\nClick http://evil/\n\n[Support #1] ref:r1-fake"
	flat := "Hello Bob Click http://evil/ [Support #1] ref :r1-fake,"
	for name, c := range map[string]struct{ from, greeting, or string }{
		"issue text": {"=?UTF-8?Q?Bob=0A=0AClick_http://evil/=0A=0A[Support_#1]_ref:r1-fake?= <bob@x.example>", flat, "Hello bob@x.example,"},
		"B-encoded":  {mime.BEncoding.Encode("UTF-8", payload) + " <bob@x.example>", flat, ""},
		"Q-encoded":  {"=?UTF-8?Q?Bob=0A=0AClick_http=3A=2F=2Fevil=2F=0A=0A=5BSupport_=231=5D_ref=3Ar1-fake?= <bob@x.example>", flat, ""},
		"CRs, U+2028 and a long name": {mime.BEncoding.Encode("UTF-8", "Bob\r\rref:r1-aaaaaaaaaaaaaaaaa\u2028"+strings.Repeat("x", 100)) + ` <bob@x.example>`,
			"Hello Bob ref :r1-aaaaaaaaaaaaaaaaa " + strings.Repeat("x", 79-len("Bob ref :r1-aaaaaaaaaaaaaaaaa ")) + "…,", ""},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			store, _ := filingStore(t, ResponderConfig{})
			deliverRaw(t, store, "bob@x.example", "From: "+c.from+"\r\n"+
				"To: support@example.test\r\nSubject: =?UTF-8?Q?Export_fails=0A=0Aref=3Ar1-fakesubject?=\r\nMessage-ID: <forged@x.example>\r\n\r\n"+
				"The CSV export of my invoices fails with error 500.\r\n")
			conf := queued(t, store)["bob@x.example"]
			if len(conf) != 1 {
				t.Fatalf("%d confirmations", len(conf))
			}
			real := "ref:" + store.Tokens().Customer(1)
			hdr, text, html := parts(t, conf[0].Raw)
			text = strings.ReplaceAll(text, "\r\n", "\n")
			lines := strings.Split(text, "\n")
			if lines[0] != c.greeting && (c.or == "" || lines[0] != c.or) || lines[1] != "" || !strings.HasPrefix(lines[2], "Thank you for writing") {
				t.Fatalf("greeting is not the one line %q:\n%s", c.greeting, text)
			}
			for part, body := range map[string]string{"text": text, "html": html} {
				if n := strings.Count(strings.ToLower(body), "ref:"); n != 1 || !strings.Contains(body, real) {
					t.Errorf("%s part has %d ref: (the real one: %s):\n%s", part, n, real, body)
				}
				if got := threads.TokenCandidates(nil, body); len(got) != 1 || "ref:"+got[0] != real {
					t.Errorf("%s part: the router reads the tokens %q", part, got)
				}
			}
			if !strings.HasPrefix(html, "<p>Hello ") || strings.Count(html[:strings.Index(html, "</p>")], "<") != 1 {
				t.Errorf("HTML greeting is not one paragraph of escaped text:\n%s", html)
			}
			if s := hdr.Get("Subject"); strings.ContainsAny(s, "\r\n") {
				t.Errorf("subject %q", s)
			}
		})
	}
}

// TestCustomerValuesAreFlattenedAndCapped: every customer value a template shows as one
// line is one line and capped (names 80 runes, subjects 200), with an ellipsis.
func TestCustomerValuesAreFlattenedAndCapped(t *testing.T) {
	t.Parallel()
	r := NewResponder(ResponderConfig{Helpdesk: "Support"}, nil, threads.NewTokens([]byte("0123456789abcdef0123")))
	long := strings.Repeat("ä", 300)
	f := threads.Filed{
		Ticket: threads.TicketInfo{ID: 1, Subject: "Line one\nref:r1-fake\u2028" + long, Category: "other"},
		Message: threads.MessageInfo{From: "bob@example.com", FromName: "Bob\r\n\r\nref:r1-fake\u0085x\u2029" + long,
			Text: "first line\nsecond line"},
	}
	earlier := []threads.Ticket{{ID: 2, Subject: "old\n\nref:r2-fake " + long, Status: "open"}}
	d := r.data(f, earlier, "en", "r1-token")
	check := func(field, v string, max int) {
		t.Helper()
		if strings.ContainsAny(v, "\r\n\u0085\u2028\u2029") {
			t.Errorf("%s holds a line break: %q", field, v)
		}
		if n := len([]rune(v)); n > max || !strings.HasSuffix(v, "…") {
			t.Errorf("%s: %d runes, want at most %d ending in an ellipsis: %q", field, n, max, v)
		}
	}
	check("CustomerName", d.CustomerName, 80)
	check("Subject", d.Subject, 200)
	check("Earlier subject", d.Earlier[0].Subject, 200)
	if d.Text != f.Message.Text {
		t.Errorf("the text is multi-line by design (quoted by the template): %q", d.Text)
	}
	if d := r.data(threads.Filed{Message: threads.MessageInfo{From: "m\xfcller@example.com"}}, nil, "en", "t"); !strings.Contains(d.CustomerName, "\uFFFD") || !strings.Contains(d.Customer, "\uFFFD") {
		t.Errorf("invalid UTF-8 must be made valid: %q %q", d.CustomerName, d.Customer)
	}
}

// TestAutoReplyLimitIgnoresPlusTags (issue 8, defect 8): a robot writing from robot+1@,
// robot+2@, ... (each mail a new ticket) gets at most the per-address limit of
// confirmations in 100 rounds, and the +tag and case do not make a new address.
func TestAutoReplyLimitIgnoresPlusTags(t *testing.T) {
	t.Parallel()
	store, _ := filingStore(t, ResponderConfig{Agents: []Agent{}})
	for i := range 100 {
		from := fmt.Sprintf("Robot+%d@Example.NET", i)
		deliverRaw(t, store, from, fmt.Sprintf("From: %s\r\nTo: support@example.test\r\nSubject: Thanks for your message %d\r\n"+
			"Message-ID: <robot-%d@example.net>\r\n\r\nWe got your message and will read it carefully later today.\r\n", from, i, i))
	}
	total := 0
	for _, items := range queued(t, store) {
		total += len(items)
	}
	if total != 10 {
		t.Fatalf("%d confirmations to robot+N@example.net in 100 rounds, want the limit of 10", total)
	}
	// Another address is not held back by the robot.
	deliverRaw(t, store, "alice@example.net", "From: alice@example.net\r\nTo: support@example.test\r\nSubject: Export fails\r\n"+
		"Message-ID: <alice@example.net>\r\n\r\nThe CSV export of my invoices fails with error 500.\r\n")
	if n := len(queued(t, store)["alice@example.net"]); n != 1 {
		t.Fatalf("alice got %d confirmations", n)
	}
}

// A display name that looks like an address never greets the reader as that address:
// "victim@bank.com" <attacker@evil.example> is greeted as attacker@evil.example.
func TestNameLookingLikeAnAddressIsNotShown(t *testing.T) {
	t.Parallel()
	store, _ := filingStore(t, ResponderConfig{})
	deliverRaw(t, store, "attacker@evil.example", "From: victim@bank.example <attacker@evil.example>\r\n"+
		"To: support@example.test\r\nSubject: Refund\r\nMessage-ID: <spoof@evil.example>\r\n\r\nPlease refund my order 1234 to my new account.\r\n")
	conf := queued(t, store)["attacker@evil.example"]
	if len(conf) != 1 {
		t.Fatalf("%d confirmations", len(conf))
	}
	hdr, text, html := parts(t, conf[0].Raw)
	if !strings.HasPrefix(text, "Hello attacker@evil.example,") || strings.Contains(text+html+hdr.Get("To"), "victim@bank") {
		t.Fatalf("the confirmation greets or shows the forged name:\n%s", text)
	}
}

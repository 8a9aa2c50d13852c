package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/replydesk/replydesk/threads"
)

// capture is an in-process smarthost that keeps what it receives, with fault injection:
// tempFail answers the next DATA commands 451, reject answers RCPT 550 for an address,
// onMail runs for every accepted message (an autoresponder, say).
type capture struct {
	addr     string
	mu       sync.Mutex
	got      []captured
	dataAt   []time.Time // when each DATA command ended, accepted or not
	tempFail int
	reject   map[string]bool
	onMail   func(captured)
}

type captured struct {
	From string
	To   []string
	Raw  []byte
	Msg  *mail.Message
}

func startCapture(t *testing.T, addr string) *capture {
	t.Helper()
	c := &capture{reject: map[string]bool{}}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.addr = ln.Addr().String()
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &captureSession{c: c}, nil }))
	srv.Domain, srv.AllowInsecureAuth = "capture.test", true
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return c
}

func (c *capture) mails() []captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]captured{}, c.got...)
}

func (c *capture) to(addr string) []captured {
	var out []captured
	for _, m := range c.mails() {
		if len(m.To) > 0 && m.To[0] == addr {
			out = append(out, m)
		}
	}
	return out
}

type captureSession struct {
	c    *capture
	from string
	to   []string
}

func (s *captureSession) Reset()        { s.from, s.to = "", nil }
func (s *captureSession) Logout() error { return nil }
func (s *captureSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *captureSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.c.reject[to] {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.to = append(s.to, to)
	return nil
}
func (s *captureSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.c.mu.Lock()
	s.c.dataAt = append(s.c.dataAt, time.Now())
	if s.c.tempFail > 0 {
		s.c.tempFail--
		s.c.mu.Unlock()
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	}
	msg, _ := mail.ReadMessage(bytes.NewReader(raw))
	m := captured{From: s.from, To: s.to, Raw: raw, Msg: msg}
	s.c.got = append(s.c.got, m)
	on := s.c.onMail
	s.c.mu.Unlock()
	if on != nil {
		go on(m)
	}
	return nil
}

// serveWithSmarthost runs serve in-process, delivering through the capture server.
func serveWithSmarthost(t *testing.T, smarthost string, extra string) (addr, cfg string) {
	t.Helper()
	addr = freePort(t)
	cfg = writeConfig(t, fmt.Sprintf(`[smtp]
listen = %q

[outbound]
transport = "smtp"
smarthost = %q
tls = "none"
retry_base = "1s"
retry_max = "2s"

[[agent]]
email = "ana@example.test"
name = "Ana"
queues = ["support"]
%s`, addr, smarthost, extra))
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx, []string{"serve", "-config", cfg}, strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	}()
	t.Cleanup(func() { stop(); <-done })
	waitFor(t, "the listener", func() bool { return sendProbe(addr) })
	return addr, cfg
}

func customerMessage(from, msgID, subject, body string, extra ...string) string {
	h := fmt.Sprintf("From: Alice Example <%s>\r\nTo: support@example.test\r\nSubject: %s\r\nMessage-ID: <%s>\r\n", from, subject, msgID)
	for _, e := range extra {
		h += e + "\r\n"
	}
	return h + "\r\n" + body + "\r\n"
}

func textPart(t *testing.T, m captured) string {
	t.Helper()
	_, params, err := mime.ParseMediaType(m.Msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(m.Msg.Body, params["boundary"])
	p, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(p)
	return string(b)
}

func TestConfirmationEndToEnd(t *testing.T) {
	t.Parallel()
	sh := startCapture(t, "")
	addr, cfg := serveWithSmarthost(t, sh.addr, "")
	if err := sendMail(addr, "alice@example.com", customerMessage("alice@example.com", "c1@example.com",
		"Cannot export invoices", "The CSV export of my invoices fails with error 500.", "Content-Language: en")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a confirmation and a notification", func() bool { return len(sh.mails()) == 2 })
	conf := sh.to("alice@example.com")
	if len(conf) != 1 {
		t.Fatalf("%d mails to the customer", len(conf))
	}
	c := conf[0]
	h := c.Msg.Header
	for k, want := range map[string]string{
		"In-Reply-To": "<c1@example.com>", "References": "<c1@example.com>", "Auto-Submitted": "auto-replied",
		"Content-Language": "en", "Thread-Topic": "Cannot export invoices",
	} {
		if h.Get(k) != want {
			t.Errorf("%s: %q, want %q", k, h.Get(k), want)
		}
	}
	for _, k := range []string{"Message-Id", "Date", "Thread-Index"} {
		if h.Get(k) == "" {
			t.Errorf("no %s", k)
		}
	}
	if c.From != "" {
		t.Errorf("envelope sender %q: auto-replies go out with <>", c.From)
	}
	if !strings.HasPrefix(h.Get("Subject"), "[Support #1] ") || !strings.HasPrefix(h.Get("Content-Type"), "multipart/alternative") {
		t.Errorf("subject %q, type %q", h.Get("Subject"), h.Get("Content-Type"))
	}
	replyTo, _ := h.AddressList("Reply-To")
	if len(replyTo) != 1 || !strings.HasPrefix(replyTo[0].Address, "support+r1-") {
		t.Fatalf("Reply-To %v", replyTo)
	}
	text := textPart(t, c)
	if !strings.Contains(text, "ticket #1") || !strings.Contains(text, "ref:r1-") || !strings.Contains(text, "24 hours") || !strings.Contains(text, "(billing)") {
		t.Fatalf("confirmation text:\n%s", text)
	}
	note := sh.to("ana@example.test")
	if len(note) != 1 || !strings.Contains(textPart(t, note[0]), "error 500") || note[0].Msg.Header.Get("Auto-Submitted") != "auto-generated" {
		t.Fatalf("agent notification: %+v", note)
	}

	// A reply by headers, then one with every header stripped, sent to the Reply-To.
	confID := strings.Trim(h.Get("Message-Id"), "<>")
	if err := sendMail(addr, "alice@example.com", customerMessage("alice@example.com", "c2@example.com",
		"Re: your mail", "Here is a screenshot.", "In-Reply-To: <"+confID+">")); err != nil {
		t.Fatal(err)
	}
	stripped := customerMessage("alice@example.com", "c3@example.com", "more", "It also fails for PDF.\r\n\r\n> "+strings.ReplaceAll(strings.TrimSpace(text), "\n", "\n> "))
	if err := sendMailTo(addr, "alice@example.com", replyTo[0].Address, stripped); err != nil {
		t.Fatal(err)
	}
	_, in := waitForInbound(t, cfg, 1, 3)
	if in[1].MatchedBy != "headers" || in[2].MatchedBy != "token" {
		t.Fatalf("replies matched by %q and %q", in[1].MatchedBy, in[2].MatchedBy)
	}
	tk, _ := waitForInbound(t, cfg, 1, 3)
	for _, m := range tk.Messages {
		if m.Direction == "out" && (m.Delivery == nil || m.Delivery.Status != "sent") {
			waitFor(t, "delivery recorded", func() bool {
				code, out, _ := runCmd(t, "", "show", "-config", cfg, "-json", "1")
				return code == 0 && strings.Count(out, `"status": "sent"`) >= 2
			})
			break
		}
	}
}

func sendMailTo(addr, from, to, raw string) error {
	c, err := dialSMTP(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail(from, []string{to}, strings.NewReader(raw)); err != nil {
		return err
	}
	return c.Quit()
}

// TestSmarthostFaults: 451 twice then accepted → delivered once, after backoff; 550 →
// failed, on the ticket and in status.
func TestSmarthostFaults(t *testing.T) {
	t.Parallel()
	sh := startCapture(t, "")
	sh.tempFail = 2
	sh.reject["ana@example.test"] = true
	addr, cfg := serveWithSmarthost(t, sh.addr, "")
	if err := sendMail(addr, "alice@example.com", customerMessage("alice@example.com", "f1@example.com",
		"Refund for invoice 42", "Please refund invoice 42, it was charged twice.")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the confirmation after two 451s", func() bool { return len(sh.to("alice@example.com")) == 1 })
	sh.mu.Lock()
	at := append([]time.Time{}, sh.dataAt...)
	sh.mu.Unlock()
	// Three attempts, each after a backoff (retry_base 1s, doubling, ±20% jitter).
	if len(at) != 3 || at[1].Sub(at[0]) < 700*time.Millisecond || at[2].Sub(at[1]) < 1400*time.Millisecond {
		t.Fatalf("DATA attempts at %v: want 3, spaced by the backoff", at)
	}
	var tk threads.Ticket
	waitFor(t, "delivery states", func() bool {
		_, out, _ := runCmd(t, "", "show", "-config", cfg, "-json", "1")
		if json.Unmarshal([]byte(out), &tk) != nil {
			return false
		}
		states := map[string]string{}
		for _, m := range tk.Messages {
			if m.Delivery != nil {
				states[m.To[0]] = fmt.Sprintf("%s/%d", m.Delivery.Status, m.Delivery.Attempts)
			}
		}
		return states["alice@example.com"] == "sent/3" && strings.HasPrefix(states["ana@example.test"], "failed/")
	})
	time.Sleep(1500 * time.Millisecond)
	if n := len(sh.to("alice@example.com")); n != 1 {
		t.Fatalf("confirmation delivered %d times", n)
	}
	_, out, _ := runCmd(t, "", "status", "-config", cfg, "-json")
	var st threads.Status
	json.Unmarshal([]byte(out), &st)
	if st.Outbox.Failed != 1 || st.Outbox.Sent != 1 {
		t.Fatalf("status outbox %+v", st.Outbox)
	}
	_, out, _ = runCmd(t, "", "show", "-config", cfg, "1")
	if !strings.Contains(out, "delivery failed") {
		t.Fatalf("show does not say the notification failed:\n%s", out)
	}
}

// TestAutoresponderLoopStops: a naive autoresponder (no Auto-Submitted, no headers, a new
// subject each time) answers every mail replydesk sends it. Each of its mails opens a new
// ticket and would get a confirmation: the rate limit per address ends the exchange.
func TestAutoresponderLoopStops(t *testing.T) {
	t.Parallel()
	sh := startCapture(t, "")
	var addr string
	n := 0
	var mu sync.Mutex
	sh.onMail = func(m captured) {
		if len(m.To) == 0 || m.To[0] != "robot@example.net" {
			return
		}
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		sendMail(addr, "robot@example.net", customerMessage("robot@example.net", fmt.Sprintf("robot-%d@example.net", i),
			fmt.Sprintf("Thanks for your message %d", i), "We got your message and will read it carefully later today."))
	}
	addr, _ = serveWithSmarthost(t, sh.addr, "")
	sendMail(addr, "robot@example.net", customerMessage("robot@example.net", "robot-0@example.net", "Hello from the robot", "This is an automatic newsletter about our products."))
	waitFor(t, "the exchange to reach the limit", func() bool { return len(sh.to("robot@example.net")) >= 10 })
	time.Sleep(3 * time.Second)
	if got := len(sh.to("robot@example.net")); got != 10 {
		t.Fatalf("%d auto-replies to the autoresponder, want exactly the limit of 10", got)
	}
}

package mailout

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/replydesk/replydesk/mailin"
	"github.com/replydesk/replydesk/templates"
	"github.com/replydesk/replydesk/threads"
)

// BenchmarkDelivery delivers 20,000 queued confirmations with connection reuse to the
// smarthost named by REPLYDESK_SINK (Postfix's smtp-sink: see bench/outbound.sh), or to
// an in-process go-smtp server that discards what it gets. Reports mails/s.
//
//	REPLYDESK_SINK=127.0.0.1:10027 go test -run XXX -bench Delivery -benchtime 1x -count 3 ./mailout
func BenchmarkDelivery(b *testing.B) {
	const n = 20_000
	sink := os.Getenv("REPLYDESK_SINK")
	if sink == "" {
		sink = discardServer(b)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var total time.Duration
	for range b.N {
		b.StopTimer()
		store := queuedStore(b, n, log)
		tr := NewSMTPTransport(SMTPConfig{Addr: sink, TLS: "none", Hostname: "bench.test", MaxConns: 8})
		ob := NewOutbox(store, tr, DefaultRetry, log)
		b.StartTimer()
		start := time.Now()
		sent := 0
		for sent < n {
			k, err := ob.DeliverDue(context.Background())
			if err != nil || k == 0 {
				b.Fatalf("after %d: %d, %v", sent, k, err)
			}
			sent += k
		}
		total += time.Since(start)
		b.StopTimer()
		tr.Close()
		if st, _ := store.Status(context.Background()); st.Outbox.Sent != n {
			b.Fatalf("sent %d of %d", st.Outbox.Sent, n)
		}
		store.Close()
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "mails/s")
}

// queuedStore files n messages from n customers, so n confirmations wait in the outbox.
func queuedStore(tb testing.TB, n int, log *slog.Logger) *threads.Store {
	store, err := threads.Open(threads.Config{DataDir: tb.TempDir(),
		Addresses: []threads.Address{{Email: "support@example.test", Queue: "support"}}}, log)
	if err != nil {
		tb.Fatal(err)
	}
	tpl, err := templates.Load("")
	if err != nil {
		tb.Fatal(err)
	}
	r := NewResponder(ResponderConfig{Helpdesk: "Support", DefaultLanguage: "en",
		OurAddresses: []string{"support@example.test"}}, tpl, store.Tokens())
	store.SetResponder(r, nil)
	for i := range n {
		from := fmt.Sprintf("c%d@example.com", i)
		raw := fmt.Sprintf("From: %s\r\nTo: support@example.test\r\nSubject: Invoice %d charged twice\r\nMessage-ID: <b%d@example.com>\r\n\r\nInvoice %d was charged twice this month.\r\n", from, i, i, i)
		if _, err := store.Accept(context.Background(), mailin.Envelope{Path: mailin.PathSMTP, MailFrom: from, Live: true}, []byte(raw)); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := store.ProcessPending(context.Background()); err != nil {
		tb.Fatal(err)
	}
	composeAll(tb, store, r)
	return store
}

// composeAll composes every intent waiting in store, as serve's Composer would.
func composeAll(tb testing.TB, store *threads.Store, r *Responder) {
	c := NewComposer(store, r, 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for {
		n, err := c.ComposeDue(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

type discard struct{}

func (discard) NewSession(*smtp.Conn) (smtp.Session, error) { return discard{}, nil }
func (discard) Reset()                                      {}
func (discard) Logout() error                               { return nil }
func (discard) Mail(string, *smtp.MailOptions) error        { return nil }
func (discard) Rcpt(string, *smtp.RcptOptions) error        { return nil }
func (discard) Data(r io.Reader) error                      { _, err := io.Copy(io.Discard, r); return err }

func discardServer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := smtp.NewServer(discard{})
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

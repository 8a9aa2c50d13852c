package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replydesk/replydesk/mailin/imap/imaptest"
)

// TestIMAPLatencyWithIdle: a message APPENDed to a real Dovecot becomes a ticket and its
// confirmation reaches the transport (an SMTP smarthost) within 5 s, p99 over 100
// messages, with IDLE. Each message comes from its own customer.
func TestIMAPLatencyWithIdle(t *testing.T) {
	if testing.Short() {
		t.Skip("100 round trips through Dovecot skipped in -short mode")
	}
	// Not parallel: this is a measurement with a bar. Beside the package's heavy tests
	// under -race (100 × 20 MB accepts, kill loops) on two cores, serve fell behind the
	// 10 msg/s and the latencies measured the queue (one CI run: p50 4 s).
	dc := imaptest.StartDovecot(t)
	arrived := make(chan string, 200) // In-Reply-To of each confirmation
	smarthost := startCapture(t, "")
	smarthost.mu.Lock()
	smarthost.onMail = func(m captured) {
		if m.Msg != nil {
			arrived <- strings.Trim(m.Msg.Header.Get("In-Reply-To"), "<>")
		}
	}
	smarthost.mu.Unlock()
	_, cfg := serveWithSmarthost(t, smarthost.addr, imapTOML(dc.Addr, `poll_interval = "1h"`)) // IDLE, or nothing
	waitFor(t, "IDLE", func() bool { return readStatus(t, cfg).mailbox().Mode == "idle" })

	// One APPEND every 100 ms from a second client, as mail trickles in; each latency is
	// from the end of its APPEND to its confirmation at the smarthost.
	const n = 100
	appended := make(chan struct {
		id string
		at time.Time
	}, n)
	appendErr := make(chan error, 1)
	c := imaptest.Dial(t, dc.Addr)
	go func() {
		for i := range n {
			id := fmt.Sprintf("lat-%d@example.com", i)
			_, err := c.TryAppend("INBOX", customerMessage(fmt.Sprintf("cust%d@example.com", i), id, fmt.Sprintf("Question %d about my invoice", i),
				"The invoice total looks wrong to me, can you check it please?"))
			if err != nil {
				appendErr <- err
				return
			}
			appended <- struct {
				id string
				at time.Time
			}{id, time.Now()}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	sent, got := map[string]time.Time{}, map[string]time.Time{}
	lat := make([]time.Duration, 0, n)
	deadline := time.After(60 * time.Second)
	for len(lat) < n {
		select {
		case a := <-appended:
			sent[a.id] = a.at
		case id := <-arrived:
			got[id] = time.Now()
		case err := <-appendErr:
			t.Fatal(err)
		case <-deadline:
			t.Fatalf("%d of %d confirmations within 60s", len(lat), n)
		}
		for id, at := range got {
			if s, ok := sent[id]; ok {
				lat = append(lat, at.Sub(s))
				delete(got, id)
				delete(sent, id)
			}
		}
	}
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[int(q*float64(n-1)+0.5)].Round(time.Millisecond) }
	t.Logf("APPEND to Dovecot -> ticket -> confirmation at the smarthost, %d messages: p50 %v, p90 %v, p99 %v, max %v",
		n, p(0.50), p(0.90), p(0.99), lat[n-1].Round(time.Millisecond))
	if p(0.99) > 5*time.Second {
		t.Fatalf("p99 %v, want at most 5s", p(0.99))
	}
	st := readStatus(t, cfg)
	if st.Accepted != n || st.mailbox().Stored != n {
		t.Errorf("%d accepted, %d taken in from the mailbox; want %d", st.Accepted, st.mailbox().Stored, n)
	}
}

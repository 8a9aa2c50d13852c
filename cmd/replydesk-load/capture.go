package main

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// capture is the smarthost serve delivers to: it counts confirmations (Auto-Submitted:
// auto-replied) and notifications (auto-generated), and times each confirmation against
// the start of the SMTP transaction of the message it answers.
type capture struct {
	srv    *smtp.Server
	corpus *corpus
	mu     sync.Mutex
	got    counts
	last   time.Time
	lat    []time.Duration
	seen   map[string]bool // In-Reply-To of confirmations: a second one is a duplicate
	dupes  int
	// agent replies: when each was sent (by the customer message it answers), how long
	// until the customer's copy arrived
	opts      options
	answered  map[string]time.Time
	agentLat  []time.Duration
	agentSent int
	rng       *rand.Rand
}

type counts struct{ confirmations, notifications int }

func startCapture(addr string, c *corpus) (*capture, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	cp := &capture{corpus: c, seen: map[string]bool{}, opts: c.o, answered: map[string]time.Time{},
		rng: rand.New(rand.NewPCG(7, 7))}
	cp.srv = smtp.NewServer(cp)
	cp.srv.Domain = "capture.localhost"
	cp.srv.MaxMessageBytes = 64 << 20
	go cp.srv.Serve(ln)
	return cp, nil
}

func (cp *capture) close() { cp.srv.Close() }

func (cp *capture) NewSession(*smtp.Conn) (smtp.Session, error) { return captureSession{cp}, nil }

type captureSession struct{ cp *capture }

func (captureSession) Mail(string, *smtp.MailOptions) error { return nil }
func (captureSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (captureSession) Reset()                               {}
func (captureSession) Logout() error                        { return nil }

func (s captureSession) Data(r io.Reader) error {
	h, err := textproto.NewReader(bufio.NewReader(r)).ReadMIMEHeader()
	if err != nil {
		return err
	}
	io.Copy(io.Discard, r)
	s.cp.record(h, time.Now())
	return nil
}

func (cp *capture) record(h textproto.MIMEHeader, at time.Time) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.last = at
	parentOf := strings.Trim(strings.TrimSpace(h.Get("In-Reply-To")), "<>")
	switch h.Get("Auto-Submitted") {
	case "":
		if sent, ok := cp.answered[parentOf]; ok {
			cp.agentLat = append(cp.agentLat, at.Sub(sent))
			delete(cp.answered, parentOf)
		}
	case "auto-generated":
		cp.got.notifications++
		if cp.opts.agentRate > 0 && cp.rng.Float64() < cp.opts.agentRate && h.Get("Reply-To") != "" {
			if _, busy := cp.answered[parentOf]; !busy {
				cp.answered[parentOf] = time.Now()
				cp.agentSent++
				go cp.answerAsAgent(h, parentOf)
			}
		}
	case "auto-replied":
		cp.got.confirmations++
		parent := strings.Trim(strings.TrimSpace(h.Get("In-Reply-To")), "<>")
		if cp.seen[parent] {
			cp.dupes++
		}
		cp.seen[parent] = true
		if m := cp.corpus.lookup(parent); m != nil {
			cp.lat = append(cp.lat, at.Sub(m.start))
		}
	}
}

// answerAsAgent replies to a notification as the agent would: to its Reply-To, quoting
// nothing, one line of text.
func (cp *capture) answerAsAgent(h textproto.MIMEHeader, parent string) {
	to := h.Get("Reply-To")
	if i := strings.LastIndexByte(to, '<'); i >= 0 {
		to = strings.Trim(to[i:], "<> ")
	}
	raw := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: Re: %s\r\nMessage-ID: <agent.%d.%s>\r\nIn-Reply-To: %s\r\n\r\nThanks, we are on it: a fix goes out today.\r\n",
		cp.opts.agent, to, h.Get("Subject"), time.Now().UnixNano(), parent, h.Get("Message-Id"))
	m := &sent{id: "agent", from: cp.opts.agent}
	o := cp.opts
	o.to = to
	cl, _, err := send(nil, o, m, []byte(raw))
	if cl != nil {
		cl.Quit()
	}
	if err != nil {
		cp.mu.Lock()
		delete(cp.answered, parent)
		cp.mu.Unlock()
	}
}

// report waits (up to wait) for the mail the load should cause, then prints how long
// the whole of it took from the start of the load and the customer-visible latency.
func (cp *capture) report(start time.Time, want counts, wait time.Duration) {
	deadline := time.Now().Add(wait)
	for {
		cp.mu.Lock()
		got := cp.got
		cp.mu.Unlock()
		if got.confirmations >= want.confirmations && got.notifications >= want.notifications || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	total := cp.last.Sub(start)
	sortDurations(cp.lat)
	if cp.agentSent > 0 {
		deadline := time.Now().Add(10 * time.Second)
		for len(cp.agentLat) < cp.agentSent && time.Now().Before(deadline) {
			cp.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			cp.mu.Lock()
		}
		sortDurations(cp.agentLat)
		fmt.Printf("agent replies: %d sent, %d reached the customer; agent reply -> customer's copy handed to the transport p50 %s p90 %s p99 %s\n",
			cp.agentSent, len(cp.agentLat), pct(cp.agentLat, 50), pct(cp.agentLat, 90), pct(cp.agentLat, 99))
	}
	fmt.Printf("end to end: confirmations %d/%d, notifications %d/%d, %d duplicates; last mail %.2fs after the start: %.0f msg/s filed and answered; mail in -> confirmation handed to the transport p50 %s p90 %s p99 %s\n",
		cp.got.confirmations, want.confirmations, cp.got.notifications, want.notifications, cp.dupes,
		total.Seconds(), float64(len(cp.corpus.byID))/total.Seconds(), pct(cp.lat, 50), pct(cp.lat, 90), pct(cp.lat, 99))
}

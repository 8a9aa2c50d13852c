package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// sent is one message of the run, for replies to it and for the latency of its answer.
type sent struct {
	id, from string
	refs     []string
	start    time.Time // the start of its SMTP transaction
}

// corpus hands out the messages of a run: new ones from distinct customers, and replies
// to messages already sent.
type corpus struct {
	o     options
	run   string
	mu    sync.Mutex
	done  []*sent          // accepted, so they can be replied to
	byID  map[string]*sent // every message sent, by Message-ID
	rng   *rand.Rand
	fresh atomic.Int64 // new messages (each gets a confirmation)
}

func newCorpus(o options) *corpus {
	return &corpus{o: o, run: fmt.Sprintf("%x", time.Now().UnixNano()), byID: map[string]*sent{},
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 42))}
}

// next builds message i: a reply to an earlier message of the run with probability
// o.replies (when there is one to reply to), else a new message.
func (c *corpus) next(i int64) (*sent, []byte) {
	m := &sent{id: fmt.Sprintf("%s.%d@load.example.test", c.run, i), from: "load@example.test"}
	subject := fmt.Sprintf("load %d", i)
	c.mu.Lock()
	if c.o.customers && len(c.done) > 0 && c.rng.Float64() < c.o.replies {
		parent := c.done[c.rng.IntN(len(c.done))]
		m.from, m.refs = parent.from, append(append([]string{}, parent.refs...), parent.id)
		subject = "Re: order " + strings.TrimSuffix(strings.TrimPrefix(parent.id, c.run+"."), "@load.example.test")
	} else if c.o.customers {
		m.from = fmt.Sprintf("customer%d.%s@example.net", i, c.run)
		subject = fmt.Sprintf("order %d: the invoice shows the wrong amount", i)
	}
	c.byID[m.id] = m
	c.mu.Unlock()
	if len(m.refs) == 0 {
		c.fresh.Add(1)
	}
	return m, message(m, subject, c.o.size, c.o.to)
}

// accepted makes m available to reply to.
func (c *corpus) accepted(m *sent) {
	c.mu.Lock()
	c.done = append(c.done, m)
	c.mu.Unlock()
}

func (c *corpus) lookup(id string) *sent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byID[id]
}

func run(o options) error {
	c := newCorpus(o)
	var cap *capture
	if o.capture != "" {
		var err error
		if cap, err = startCapture(o.capture, c); err != nil {
			return err
		}
		defer cap.close()
	}
	var next, failed atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, o.sessions)
	start := time.Now()
	var wg sync.WaitGroup
	for s := range o.sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cl *smtp.Client
			for {
				i := next.Add(1)
				if i > int64(o.n) {
					break
				}
				if o.rate > 0 {
					time.Sleep(time.Until(start.Add(time.Duration(float64(i-1) / o.rate * float64(time.Second)))))
				}
				m, raw := c.next(i)
				var d time.Duration
				var err error
				cl, d, err = send(cl, o, m, raw)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					if cl != nil {
						cl.Close()
					}
					cl = nil
					continue
				}
				c.accepted(m)
				lat[s] = append(lat[s], d)
				if !o.reuse {
					cl.Quit()
					cl = nil
				}
			}
			if cl != nil {
				cl.Quit()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sortDurations(all)
	ok := len(all)
	fmt.Printf("sent %d messages of %d bytes over %d sessions (reuse=%v, customers=%v, replies=%.0f%%) in %.2fs: %.0f msg/s; DATA-to-reply p50 %s p90 %s p99 %s; %d failed\n",
		ok, o.size, o.sessions, o.reuse, o.customers, o.replies*100, elapsed.Seconds(), float64(ok)/elapsed.Seconds(),
		pct(all, 50), pct(all, 90), pct(all, 99), failed.Load())
	if cap != nil {
		want := counts{confirmations: int(c.fresh.Load())}
		if o.agents {
			want.notifications = ok
		}
		cap.report(start, want, o.wait)
	}
	if e := firstErr.Load(); e != nil {
		return fmt.Errorf("first failure: %v", e)
	}
	return nil
}

func send(c *smtp.Client, o options, m *sent, msg []byte) (*smtp.Client, time.Duration, error) {
	m.start = time.Now()
	if c == nil {
		conn, err := net.Dial("tcp", o.addr)
		if err != nil {
			return nil, 0, err
		}
		if o.lmtp {
			c = smtp.NewClientLMTP(conn)
		} else {
			c = smtp.NewClient(conn)
		}
		if err := c.Hello("load.localhost"); err != nil {
			return c, 0, err
		}
	}
	if err := c.Mail(m.from, nil); err != nil {
		return c, 0, err
	}
	if err := c.Rcpt(o.to, nil); err != nil {
		return c, 0, err
	}
	t0 := time.Now()
	w, err := c.Data()
	if err != nil {
		return c, 0, err
	}
	if _, err := w.Write(msg); err != nil {
		return c, 0, err
	}
	if o.lmtp {
		_, err = w.CloseWithLMTPResponse()
	} else {
		err = w.Close()
	}
	if err != nil {
		return c, 0, err
	}
	return c, time.Since(t0), nil
}

// message builds a customer's message of about size bytes: prose, not one repeated
// character, so language detection and keyword categories do their real work.
func message(m *sent, subject string, size int, to string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Customer <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s>\r\nDate: %s\r\n",
		m.from, to, subject, m.id, time.Now().Format(time.RFC1123Z))
	if len(m.refs) > 0 {
		fmt.Fprintf(&b, "In-Reply-To: <%s>\r\nReferences: <%s>\r\n", m.refs[len(m.refs)-1], strings.Join(m.refs, "> <"))
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	line := "Hello, the invoice for my last order shows the wrong amount and I was charged twice.\r\n"
	for b.Len()+len(line) <= size {
		b.WriteString(line)
	}
	return b.Bytes()
}

func sortDurations(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }

func pct(d []time.Duration, p int) string {
	if len(d) == 0 {
		return "-"
	}
	i := (len(d)*p + 99) / 100
	if i > 0 {
		i--
	}
	return d[i].Round(10 * time.Microsecond).String()
}

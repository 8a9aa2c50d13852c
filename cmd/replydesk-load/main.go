// Command replydesk-load sends N messages of S bytes over C parallel SMTP (or LMTP)
// sessions and prints messages/s and the latency from DATA to the final reply. It is the
// benchmark of acceptance; see bench/README.md for how the figures in the README were made.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:2525", "server address")
	n := flag.Int("n", 20000, "messages to send")
	size := flag.Int("s", 4096, "message size in bytes")
	sessions := flag.Int("c", 10, "parallel sessions")
	reuse := flag.Bool("reuse", false, "send every message of a session over one connection (default: a new connection per message)")
	lmtp := flag.Bool("lmtp", false, "speak LMTP instead of SMTP")
	to := flag.String("to", "support@localhost", "recipient")
	flag.Parse()
	if err := run(*addr, *n, *size, *sessions, *reuse, *lmtp, *to); err != nil {
		fmt.Fprintln(os.Stderr, "replydesk-load:", err)
		os.Exit(1)
	}
}

func run(addr string, n, size, sessions int, reuse, lmtp bool, to string) error {
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, sessions)
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	start := time.Now()
	var wg sync.WaitGroup
	for s := 0; s < sessions; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *smtp.Client
			for {
				i := next.Add(1)
				if i > int64(n) {
					break
				}
				msg := message(run, i, size, to)
				var d time.Duration
				var err error
				c, d, err = send(c, addr, lmtp, to, msg)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					if c != nil {
						c.Close()
					}
					c = nil
					continue
				}
				lat[s] = append(lat[s], d)
				if !reuse {
					c.Quit()
					c = nil
				}
			}
			if c != nil {
				c.Quit()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	ok := len(all)
	fmt.Printf("sent %d messages of %d bytes over %d sessions (reuse=%v) in %.2fs: %.0f msg/s; DATA-to-reply p50 %s p90 %s p99 %s; %d failed\n",
		ok, size, sessions, reuse, elapsed.Seconds(), float64(ok)/elapsed.Seconds(),
		pct(all, 50), pct(all, 90), pct(all, 99), failed.Load())
	if e := firstErr.Load(); e != nil {
		return fmt.Errorf("first failure: %v", e)
	}
	return nil
}

func send(c *smtp.Client, addr string, lmtp bool, to string, msg []byte) (*smtp.Client, time.Duration, error) {
	if c == nil {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, 0, err
		}
		if lmtp {
			c = smtp.NewClientLMTP(conn)
		} else {
			c = smtp.NewClient(conn)
		}
		if err := c.Hello("load.localhost"); err != nil {
			return c, 0, err
		}
	}
	if err := c.Mail("load@example.test", nil); err != nil {
		return c, 0, err
	}
	if err := c.Rcpt(to, nil); err != nil {
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
	if lmtp {
		_, err = w.CloseWithLMTPResponse()
	} else {
		err = w.Close()
	}
	if err != nil {
		return c, 0, err
	}
	return c, time.Since(t0), nil
}

// message builds a unique message of about size bytes.
func message(run string, i int64, size int, to string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Load <load@example.test>\r\nTo: <%s>\r\nSubject: load %d\r\nMessage-ID: <%s.%d@load.example.test>\r\nDate: %s\r\n\r\n",
		to, i, run, i, time.Now().Format(time.RFC1123Z))
	line := strings.Repeat("x", 70) + "\r\n"
	for b.Len()+len(line) <= size {
		b.WriteString(line)
	}
	return b.Bytes()
}

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

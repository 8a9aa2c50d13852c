package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/replydesk/replydesk/threads"
)

// TestAcceptMemoryBounded is defect 4: 100 sessions from four client addresses send a
// 20 MB message each, all at once (half declare SIZE=, half do not), to serve with the
// default configuration. serve's peak RSS stays under 400 MB: what does not fit in
// max_inflight_bytes is answered 4xx, and the sender retries a few times, as an MTA
// would. Every message answered 250 is in the store; nothing else is.
func TestAcceptMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("2 GB of mail skipped in -short mode")
	}
	t.Parallel()
	const n, size, limit, attempts = 100, 20 << 20, 400 << 20, 5
	bin := buildBinary(t)
	addr := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf("[smtp]\nlisten = %q\n", addr))
	serve := startServe(t, bin, cfg, addr)
	defer serve.Process.Kill()

	var acked, deferred, tries atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := fmt.Sprintf("127.0.0.%d", i%4+1)
			for try := 1; ; try++ {
				tries.Add(1)
				err := sendBig(addr, src, i, size, i%2 == 0)
				var se *smtp.SMTPError
				switch {
				case err == nil:
					acked.Add(1)
					return
				case errors.As(err, &se) && se.Temporary():
					if try == attempts {
						deferred.Add(1)
						return
					}
					time.Sleep(time.Duration(try) * 500 * time.Millisecond)
				default:
					t.Errorf("message %d from %s: %v (want 250 or 4xx)", i, src, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	peak := peakRSS(t, serve.Process.Pid)

	var st threads.Status
	_, out, _ := runCmd(t, "", "status", "-config", cfg, "-json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	serve.Process.Signal(syscall.SIGTERM)
	serve.Wait()
	t.Logf("%d × %d MiB from 4 addresses in %s: %d accepted, %d still deferred after %d attempts, %d attempts in all; serve's peak RSS %d MiB",
		n, size>>20, elapsed.Round(time.Millisecond), acked.Load(), deferred.Load(), attempts, tries.Load(), peak>>20)
	if st.Accepted != acked.Load() {
		t.Errorf("%d messages stored, %d acknowledged", st.Accepted, acked.Load())
	}
	if acked.Load() == 0 {
		t.Error("nothing accepted")
	}
	if peak > limit {
		t.Errorf("serve's peak RSS %d MiB, over %d MiB", peak>>20, limit>>20)
	}
}

// sendBig sends one message of about size bytes from the local address src, generated
// as it is sent (100 of them would not fit in the test's memory either). With declare,
// MAIL carries the exact SIZE=.
func sendBig(addr, src string, i, size int, declare bool) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("sender.example"); err != nil {
		return err
	}
	head := fmt.Sprintf("From: s%d@example.com\r\nTo: support@example.test\r\nSubject: big %d\r\nMessage-ID: <big%d@memory.test>\r\n\r\n", i, i, i)
	line := fmt.Sprintf("%-78d\r\n", i)
	lines := (size - len(head)) / len(line)
	var opts *smtp.MailOptions
	if declare {
		opts = &smtp.MailOptions{Size: int64(len(head) + lines*len(line))}
	}
	if err := c.Mail(fmt.Sprintf("s%d@example.com", i), opts); err != nil {
		return err
	}
	if err := c.Rcpt("support@example.test", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, io.MultiReader(strings.NewReader(head), &repeatReader{line: line, n: lines})); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// repeatReader yields line n times.
type repeatReader struct {
	line string
	n    int
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	total := 0
	for len(p) > 0 && r.n > 0 {
		k := copy(p, r.line[r.off:])
		p, total, r.off = p[k:], total+k, r.off+k
		if r.off == len(r.line) {
			r.off, r.n = 0, r.n-1
		}
	}
	if total == 0 && r.n == 0 {
		return 0, io.EOF
	}
	return total, nil
}

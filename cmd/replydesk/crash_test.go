package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/replydesk/replydesk/threads"
)

// buildBinary builds replydesk once for the subprocess tests.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "replydesk")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startServe(t *testing.T, bin, cfg, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "serve", "-config", cfg)
	cmd.Env = append(os.Environ(), "REPLYDESK_LOG=warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "serve to listen", func() bool { return sendProbe(addr) })
	return cmd
}

func sendProbe(addr string) bool {
	c, err := dialSMTP(addr)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// mailStream is sessions goroutines sending mail to serve, one new connection a message,
// until stop; acked holds the Message-IDs that got 250.
type mailStream struct {
	acked         sync.Map
	nAcked, nSent atomic.Int64
	done          chan struct{}
	wg            sync.WaitGroup
}

// streamMail starts it; mail(s, i) is message i of session s.
func streamMail(addr string, sessions int, mail func(s, i int) (from, id, raw string)) *mailStream {
	st := &mailStream{done: make(chan struct{})}
	for s := range sessions {
		st.wg.Add(1)
		go func() {
			defer st.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-st.done:
					return
				default:
				}
				from, id, raw := mail(s, i)
				st.nSent.Add(1)
				if sendMail(addr, from, raw) == nil {
					st.acked.Store(id, true)
					st.nAcked.Add(1)
				}
			}
		}()
	}
	return st
}

// stop ends the stream and waits for its sessions.
func (st *mailStream) stop() {
	close(st.done)
	st.wg.Wait()
}

// TestCrashLosesNothingAcknowledged: 8 sessions stream mail; the server is killed with
// SIGKILL mid-stream and restarted. Every message that got 250 must be stored exactly
// once and filed into a ticket. Five rounds.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess crash test skipped in -short mode")
	}
	t.Parallel()
	bin := buildBinary(t)
	for round := 1; round <= 5; round++ {
		t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) { crashRound(t, bin, round) })
	}
}

func crashRound(t *testing.T, bin string, round int) {
	addr := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf("[smtp]\nlisten = %q\n", addr))
	srv := startServe(t, bin, cfg, addr)

	load := streamMail(addr, 8, func(s, i int) (from, id, raw string) {
		id = fmt.Sprintf("r%d-s%d-m%d@crash.test", round, s, i)
		from = fmt.Sprintf("c%d@example.com", s)
		return from, id, fmt.Sprintf("From: %s\r\nTo: support@example.test\r\nSubject: crash %s\r\nMessage-ID: <%s>\r\n\r\nbody %s\r\n", from, id, id, id)
	})
	acked, nAcked, nSent := &load.acked, &load.nAcked, &load.nSent
	// Kill at a different point each round.
	waitFor(t, "some acknowledged mail", func() bool { return nAcked.Load() >= int64(100*round) })
	srv.Process.Signal(syscall.SIGKILL)
	srv.Wait()
	load.stop()

	srv = startServe(t, bin, cfg, addr)
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
	}()
	var st threads.Status
	waitFor(t, "the backlog to be filed", func() bool {
		_, out, _ := runCmd(t, "", "status", "-config", cfg, "-json")
		return json.Unmarshal([]byte(out), &st) == nil && st.Unfiled == 0
	})
	filed := filedIDs(t, cfg)
	missing, twice := 0, 0
	acked.Range(func(k, _ any) bool {
		switch filed[k.(string)] {
		case 0:
			missing++
		case 1:
		default:
			twice++
		}
		return true
	})
	for id, n := range filed {
		if n > 1 {
			t.Errorf("%s filed %d times", id, n)
		}
	}
	t.Logf("round %d: %d sent, %d acknowledged before SIGKILL, %d stored and filed after restart (unacknowledged ones may be there too)",
		round, nSent.Load(), nAcked.Load(), len(filed))
	if missing > 0 || twice > 0 || st.Accepted != int64(len(filed)) {
		t.Fatalf("%d acknowledged messages missing, %d filed twice; %d accepted rows for %d filed messages", missing, twice, st.Accepted, len(filed))
	}
}

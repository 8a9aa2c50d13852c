package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/mail"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/replydesk/replydesk/mailin/imap/imaptest"
	"github.com/replydesk/replydesk/threads"
)

// TestIMAPCrashLosesNothing: mail keeps arriving in a real Dovecot (APPEND in a loop)
// while serve, taking it in over IMAP, is SIGKILLed at random points, five times. After
// every kill, everything in the processed mailbox is in the store (nothing was moved
// before it was stored); at the end every appended message is stored and filed exactly
// once, and none is left in INBOX.
func TestIMAPCrashLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess crash test skipped in -short mode")
	}
	t.Parallel()
	dc := imaptest.StartDovecot(t)
	bin := buildBinary(t)
	addr := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf("[smtp]\nlisten = %q\n", addr)+imapTOML(dc.Addr, `poll_interval = "1s"`))
	owner := imaptest.Dial(t, dc.Addr)

	// Three clients APPEND as fast as Dovecot takes it.
	var mu sync.Mutex
	var appended []string
	stop := make(chan struct{})
	var appenders sync.WaitGroup
	appendErrs := make(chan error, 3)
	for a := range 3 {
		c := imaptest.Dial(t, dc.Addr)
		appenders.Add(1)
		go func() {
			defer appenders.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("crash-%d-%d@example.com", a, i)
				raw := customerMessage(fmt.Sprintf("c%d@example.com", i%50), id, fmt.Sprintf("Crash test %d/%d", a, i), "Where is my order? "+id)
				if _, err := c.TryAppend("INBOX", raw); err != nil {
					appendErrs <- err
					return
				}
				mu.Lock()
				appended = append(appended, id)
				mu.Unlock()
			}
		}()
	}
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 11))
	t.Logf("kill points from seed %d", seed)
	betweenCommitAndMove := 0
	for round := 1; round <= 5; round++ {
		srv := startServe(t, bin, cfg, addr)
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond) // often inside the burst after a start
		srv.Process.Signal(syscall.SIGKILL)
		srv.Wait()
		// INBOX before Processed: a MOVE that Dovecot is still finishing for the killed
		// client shows in one or both, never in neither.
		inbox := mailboxIDs(t, owner, "INBOX")
		processed := mailboxIDs(t, owner, "Processed")
		stored := storedIDs(t, cfg)
		stranded := 0
		for id := range inbox {
			if stored[id] > 0 {
				stranded++ // stored, not yet moved: the next start moves it
			}
		}
		if stranded > 0 {
			betweenCommitAndMove++
		}
		for id := range processed {
			if stored[id] == 0 {
				t.Errorf("round %d: %s was moved to Processed but is not stored", round, id)
			}
		}
		mu.Lock()
		n := len(appended)
		mu.Unlock()
		t.Logf("round %d: SIGKILL with %d appended, %d stored, %d in Processed, %d in INBOX (%d of them stored, not yet moved)",
			round, n, len(stored), len(processed), len(inbox), stranded)
	}
	close(stop)
	appenders.Wait()
	select {
	case err := <-appendErrs:
		t.Fatal(err)
	default:
	}
	mu.Lock()
	want := append([]string(nil), appended...)
	mu.Unlock()

	srv := startServe(t, bin, cfg, addr)
	defer func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }()
	waitFor(t, "an empty INBOX and everything filed", func() bool {
		if len(mailboxIDs(t, owner, "INBOX")) > 0 {
			return false
		}
		_, out, _ := runCmd(t, "", "status", "-config", cfg, "-json")
		var st threads.Status
		return json.Unmarshal([]byte(out), &st) == nil && st.Unfiled == 0 && st.Accepted >= int64(len(want))
	})
	stored, processed, filed := storedIDs(t, cfg), mailboxIDs(t, owner, "Processed"), filedIDs(t, cfg)
	for _, id := range want {
		if stored[id] != 1 || filed[id] != 1 || processed[id] != 1 {
			t.Errorf("%s: stored %d times, filed %d times, %d times in Processed; want 1, 1, 1", id, stored[id], filed[id], processed[id])
		}
	}
	if len(stored) != len(want) || len(processed) != len(want) {
		t.Errorf("%d stored, %d in Processed, for %d appended", len(stored), len(processed), len(want))
	}
	t.Logf("after 5 kills (%d of them between a commit and its move): %d appended, %d stored once each, %d filed, %d in Processed, 0 in INBOX",
		betweenCommitAndMove, len(want), len(stored), len(filed), len(processed))
}

// storedIDs counts the Message-IDs of the raw messages in the store (filed or not),
// read while serve is stopped or running (read-only).
func storedIDs(t *testing.T, cfgPath string) map[string]int {
	t.Helper()
	cfg, _, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := cfg.threadsConfig()
	if err != nil {
		t.Fatal(err)
	}
	st, err := threads.OpenReader(tc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	status, err := st.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for i := int64(1); i <= status.Accepted; i++ {
		raw, err := st.RawMessage(ctx, i)
		if err != nil {
			t.Fatalf("raw message %d: %v", i, err)
		}
		ids[messageID(raw)]++
	}
	return ids
}

// filedIDs counts the inbound Message-IDs filed into tickets (export).
func filedIDs(t *testing.T, cfg string) map[string]int {
	t.Helper()
	code, out, errOut := runCmd(t, "", "export", "-config", cfg)
	if code != 0 {
		t.Fatalf("export: %s", errOut)
	}
	ids := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		var tk threads.Ticket
		if err := json.Unmarshal(sc.Bytes(), &tk); err != nil {
			t.Fatal(err)
		}
		for _, m := range tk.Messages {
			if m.Direction == "in" {
				ids[m.MessageID]++
			}
		}
	}
	return ids
}

func mailboxIDs(t *testing.T, c *imaptest.Client, mailbox string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for _, m := range c.Messages(mailbox) {
		ids[messageID(m.Raw)]++
	}
	return ids
}

func messageID(raw []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	return strings.Trim(m.Header.Get("Message-Id"), "<> ")
}

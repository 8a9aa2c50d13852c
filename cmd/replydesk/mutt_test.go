package main

import (
	"bytes"
	"fmt"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// peers is ../shared/peers beside the repository.
const peers = "../../../shared/peers"

// dirMail is one mail the dir transport wrote: its envelope recipients and the message.
type dirMail struct {
	file string
	to   string
	msg  *mail.Message
	text string
}

func dirMails(t *testing.T, dir string) []dirMail {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	var out []dirMail
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), ".") {
			continue // the dir transport's file being written
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		body, _, _ := bytes.Cut(raw, []byte("Content-Type: text/html"))
		out = append(out, dirMail{file: f, to: msg.Header.Get("X-Replydesk-Envelope-To"), msg: msg, text: string(body)})
	}
	return out
}

// TestMuttAgentWorkflow is issue 10's real-client test: a customer writes (swaks), the
// agents' notification arrives (dir transport), an agent answers it with mutt, quoting
// all of it and signing: the customer receives only the agent's new text, threaded under
// their own message, from the support address; the ticket is pending, assigned, first
// response recorded. The customer replies: only the assignee is told. The agent answers
// "#resolve" alone: resolved, and the customer receives nothing.
func TestMuttAgentWorkflow(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"mutt", "swaks"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (.ci/run installs it)", tool)
		}
	}
	if _, err := os.Stat(filepath.Join(peers, "mutt-reply.sh")); err != nil {
		t.Skip("../shared/peers is not beside the repository")
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("mutt-reply.sh needs /usr/bin/python3 (.ci/run installs it)")
	}
	addr := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf("[smtp]\nlisten = %q\n\n[[agent]]\nemail = \"ana@example.test\"\nname = \"Ana\"\nqueues = [\"support\"]\n\n[[agent]]\nemail = \"bo@example.test\"\nname = \"Bo\"\nqueues = [\"support\"]\n", addr))
	outbox := filepath.Join(filepath.Dir(cfg), "data", "outbox")
	serveInProcess(t, cfg, addr)
	port := addr[strings.LastIndexByte(addr, ':')+1:]

	swaks := exec.Command("swaks", "--server", addr, "--to", "support@example.test", "--from", "alice@example.com",
		"--header", "Subject: Printer on fire", "--header", "Message-Id: <alice-1@example.com>",
		"--header", "From: Alice <alice@example.com>", "--body", "My printer is on fire, please help. Order 4411.")
	if out, err := swaks.CombinedOutput(); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	var notification dirMail
	waitFor(t, "the agents' notification", func() bool {
		for _, m := range dirMails(t, outbox) {
			if strings.Contains(m.to, "ana@example.test") && m.msg.Header.Get("Auto-Submitted") == "auto-generated" {
				notification = m
				return true
			}
		}
		return false
	})
	mutt := func(text string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(peers, "mutt-reply.sh"), notification.file, text)
		cmd.Env = append(os.Environ(), "SMTP_PORT="+port, "REPLY_FROM=ana@example.test")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mutt-reply.sh: %v\n%s", err, out)
		}
	}
	mutt("Hi Alice,\n\nplease unplug it and send us a photo of the label.\n\n-- \nAna Agent\nAcme Support, +1 555 0100")
	var reply dirMail
	waitFor(t, "the agent's reply at the customer", func() bool {
		for _, m := range dirMails(t, outbox) {
			if m.to == "<alice@example.com>" && m.msg.Header.Get("Auto-Submitted") == "" {
				reply = m
				return true
			}
		}
		return false
	})
	h := reply.msg.Header
	if !strings.Contains(h.Get("From"), "Ana (Support)") || !strings.Contains(h.Get("From"), "<support@example.test>") ||
		h.Get("In-Reply-To") != "<alice-1@example.com>" || !strings.Contains(h.Get("Subject"), "[Support #1]") {
		t.Errorf("the customer's mail: From %q, In-Reply-To %q, Subject %q", h.Get("From"), h.Get("In-Reply-To"), h.Get("Subject"))
	}
	if !strings.Contains(reply.text, "please unplug it") || strings.Contains(reply.text, "wrote on ticket") ||
		strings.Contains(reply.text, "555 0100") || strings.Contains(reply.text, "ref:a1-") {
		t.Errorf("the customer got more than the agent's new text:\n%s", reply.text)
	}
	tk, _ := waitForInbound(t, cfg, 1, 2)
	if tk.Status != "pending" || tk.Assignee != "ana@example.test" || tk.FirstResponse == nil {
		t.Errorf("after the agent's reply: status %s, assignee %q, first response %v", tk.Status, tk.Assignee, tk.FirstResponse)
	}

	// The customer answers the agent's mail: only the assignee is told.
	before := len(dirMails(t, outbox))
	swaks = exec.Command("swaks", "--server", addr, "--to", "support@example.test", "--from", "alice@example.com",
		"--header", "Subject: Re: [Support #1] Printer on fire", "--header", "In-Reply-To: "+h.Get("Message-Id"),
		"--header", "From: Alice <alice@example.com>", "--body", "Here is the label: HP-4411.")
	if out, err := swaks.CombinedOutput(); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	waitFor(t, "the assignee's notification", func() bool { return len(dirMails(t, outbox)) > before })
	time.Sleep(300 * time.Millisecond) // anything else it caused would be out by now
	var told []string
	for _, m := range dirMails(t, outbox)[before:] {
		told = append(told, m.to)
	}
	if len(told) != 1 || told[0] != "<ana@example.test>" {
		t.Errorf("after the customer's reply, mail went to %v; want the assignee only", told)
	}

	// #resolve alone: resolved, nothing to the customer.
	before = len(dirMails(t, outbox))
	mutt("#resolve")
	waitFor(t, "the ticket resolved", func() bool {
		tk, _ := waitForInbound(t, cfg, 1, 4)
		return tk.Status == "resolved"
	})
	time.Sleep(300 * time.Millisecond)
	for _, m := range dirMails(t, outbox)[before:] {
		t.Errorf("#resolve sent mail to %s", m.to)
	}
}

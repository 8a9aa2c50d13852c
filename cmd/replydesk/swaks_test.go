package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// TestSwaksAgainstServe drives serve with swaks, a real SMTP client (as in the README),
// including a reply by In-Reply-To. Skipped when swaks is not installed; .ci/run installs it.
func TestSwaksAgainstServe(t *testing.T) {
	t.Parallel()
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		t.Skip("swaks not installed (apt-get install swaks)")
	}
	addr := freePort(t)
	cfg := writeConfig(t, fmt.Sprintf("[smtp]\nlisten = %q\n", addr))
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx, []string{"serve", "-config", cfg}, strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	}()
	defer func() { stop(); <-done }() // serve must be gone before the temp dir is removed
	waitFor(t, "the listener", func() bool { return sendProbe(addr) })
	for _, args := range [][]string{
		{"--header", "Message-Id: <swaks-1@example.com>", "--header", "Subject: Cannot log in", "--body", "The login page says error 42."},
		{"--header", "Message-Id: <swaks-2@example.com>", "--header", "In-Reply-To: <swaks-1@example.com>", "--header", "Subject: Re: Cannot log in", "--body", "Also on mobile."},
	} {
		cmd := exec.Command(swaks, append([]string{"--server", addr, "--to", "support@example.test", "--from", "carol@example.com"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
	}
	tk, in := waitForInbound(t, cfg, 1, 2)
	if !strings.Contains(in[0].Text, "error 42") || tk.Subject != "Cannot log in" || in[1].MatchedBy != "headers" {
		t.Fatalf("ticket 1: %+v", tk)
	}
}

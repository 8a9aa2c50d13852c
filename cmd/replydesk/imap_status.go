package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/replydesk/replydesk/threads"
)

// statusWithMailboxes is `status -json`: the store's status and, under "imap", each
// polled mailbox.
type statusWithMailboxes struct {
	threads.Status
	IMAP []mailboxView `json:"imap"`
}

// mailboxView is one polled mailbox in status, with what the configuration says it is.
type mailboxView struct {
	threads.MailboxStatus
	Role string `json:"role"` // inbox, or sent: an [[imap]] sent_mailbox (read only, filed as agent replies)
}

// mailboxStatus lists the polled mailboxes, each with its role.
func mailboxStatus(ctx context.Context, env *cmdEnv, store *threads.Store) ([]mailboxView, error) {
	list, err := store.MailboxStatus(ctx)
	if err != nil {
		return nil, err
	}
	sent := map[string]bool{}
	for _, im := range env.cfg.IMAP {
		if k := im.config().SentKey(); k != "" {
			sent[strings.ToLower(k)] = true
		}
	}
	out := make([]mailboxView, len(list))
	for i, m := range list {
		out[i] = mailboxView{MailboxStatus: m, Role: "inbox"}
		if sent[strings.ToLower(m.Mailbox)] {
			out[i].Role = "sent"
		}
	}
	return out, nil
}

// printMailboxes is the IMAP part of `status`: per mailbox, connected or not, IDLE or
// polling, last success and error, mail waiting on the server, the checkpoint, and the
// messages left on the server.
func printMailboxes(w io.Writer, list []mailboxView) {
	if len(list) == 0 {
		return
	}
	fmt.Fprintln(w, "\nimap mailboxes:")
	for _, m := range list {
		state := "not connected"
		if m.Connected {
			state = "connected, " + map[string]string{"idle": "IDLE", "poll": "polling"}[m.Mode]
		}
		fmt.Fprintf(w, "  %s\n", m.Mailbox)
		if m.Role == "sent" {
			fmt.Fprintf(w, "    Sent folder, read only: its mail is filed into its tickets as agent replies, never sent again;\n"+
				"    mail that answers no ticket, and copies of replydesk's own mail, are kept in no ticket (show -inbox N says why)\n")
		}
		fmt.Fprintf(w, "    %s (as of %s); last success %s; %d waiting on the server; %d taken in\n",
			state, timeOrNever(m.Updated), timeOrNever(m.LastOK), m.Waiting, m.Stored)
		fmt.Fprintf(w, "    checkpoint: UIDVALIDITY %d, every UID up to %d stored\n", m.UIDValidity, m.LastUID)
		if m.LastError != "" {
			fmt.Fprintf(w, "    last error %s: %s\n", timeOrNever(m.LastErrorAt), m.LastError)
		}
		if m.SkippedCount > 0 {
			fmt.Fprintf(w, "    %d left on the server (flagged there):\n", m.SkippedCount)
			for _, k := range m.Skipped {
				fmt.Fprintf(w, "      UID %d, %d bytes, %s: %s\n", k.UID, k.Size, k.At.Format(time.RFC3339), k.Reason)
			}
		}
	}
}

package main

import (
	"fmt"
	"io"
	"time"

	"github.com/replydesk/replydesk/threads"
)

// statusWithMailboxes is `status -json`: the store's status and, under "imap", each
// polled mailbox.
type statusWithMailboxes struct {
	threads.Status
	IMAP []threads.MailboxStatus `json:"imap"`
}

// printMailboxes is the IMAP part of `status`: per mailbox, connected or not, IDLE or
// polling, last success and error, mail waiting on the server, the checkpoint, and the
// messages left on the server.
func printMailboxes(w io.Writer, list []threads.MailboxStatus) {
	if len(list) == 0 {
		return
	}
	fmt.Fprintln(w, "\nimap mailboxes:")
	for _, m := range list {
		state := "not connected"
		if m.Connected {
			state = "connected, " + map[string]string{"idle": "IDLE", "poll": "polling"}[m.Mode]
		}
		fmt.Fprintf(w, "  %s\n    %s (as of %s); last success %s; %d waiting on the server; %d taken in\n",
			m.Mailbox, state, timeOrNever(m.Updated), timeOrNever(m.LastOK), m.Waiting, m.Stored)
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

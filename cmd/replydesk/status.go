package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"
)

var statusCommand = command{
	summary: "show intake paths, mail not yet filed or set aside, malformed mail, the outbox, overdue tickets",
	setup: func(fs *flag.FlagSet) func(context.Context, *cmdEnv, []string) error {
		asJSON := fs.Bool("json", false, "print one JSON object")
		return func(ctx context.Context, env *cmdEnv, args []string) error {
			store, err := openReader(env)
			if err != nil {
				return err
			}
			defer store.Close()
			st, err := store.Status(ctx)
			if err != nil {
				return err
			}
			mailboxes, err := mailboxStatus(ctx, env, store) // [[imap]], imap_status.go
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(env.stdout, statusWithMailboxes{st, mailboxes})
			}
			w := env.stdout
			fmt.Fprintf(w, "database %s (schema %d)\n\nintake:\n", st.Database, st.SchemaVer)
			if len(st.Intake) == 0 {
				fmt.Fprintln(w, "  (no mail received yet)")
			}
			for _, in := range st.Intake {
				fmt.Fprintf(w, "  %-7s listen %-22s accepted %-7d last message %s\n", in.Path, orDash(in.Listen), in.Accepted, timeOrNever(in.LastMessage))
				if in.LastError != "" {
					fmt.Fprintf(w, "          last error %s: %s\n", timeOrNever(in.LastErrorAt), in.LastError)
				}
			}
			printMailboxes(w, mailboxes)
			fmt.Fprintf(w, "\nmessages: %d accepted, %d not yet filed, %d set aside, %d malformed\n", st.Accepted, st.Unfiled, st.SetAsideCount, st.MalformedCount)
			for _, a := range st.SetAside {
				fmt.Fprintf(w, "  set aside: message %d from <%s>, %s: %s (show -inbox %d; refile %d)\n",
					a.InboxID, a.MailFrom, a.Received.Format(time.RFC3339), a.Reason, a.InboxID, a.InboxID)
			}
			for _, m := range st.Malformed {
				fmt.Fprintf(w, "  malformed: ticket #%d, message %d from %s: %v\n", m.Ticket, m.InboxID, orDash(m.From), m.Notes)
			}
			fmt.Fprintf(w, "tickets: %d open, %d pending, %d resolved, %d suspended\n",
				st.Tickets["open"], st.Tickets["pending"], st.Tickets["resolved"], st.Tickets["suspended"])
			fmt.Fprintf(w, "overdue (no first response by the SLA due time): %d %s\n", len(st.Overdue), ticketList(st.Overdue))
			fmt.Fprintf(w, "bouncing addresses (no auto-replies until they write): %d\n", st.Bouncing)
			o := st.Outbox
			fmt.Fprintf(w, "outbox: %d composing, %d queued, %d retrying, %d failed (see show on their tickets), %d sent\n", o.Composing, o.Queued, o.Retrying, o.Failed, o.Sent)
			return nil
		}
	},
}

func ticketList(ids []int64) string {
	var b strings.Builder
	for i, id := range ids {
		if i == 20 {
			fmt.Fprintf(&b, " …")
			break
		}
		fmt.Fprintf(&b, " #%d", id)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeOrNever(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Format(time.RFC3339)
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/replydesk/replydesk/threads"
)

var ticketsCommand = command{
	summary: "list tickets by number",
	setup: func(fs *flag.FlagSet) func(context.Context, *cmdEnv, []string) error {
		status := fs.String("status", "", "only tickets with this status (open, pending, resolved, suspended)")
		queue := fs.String("queue", "", "only tickets of this queue")
		overdue := fs.Bool("overdue", false, "only open tickets past their first-response due time")
		asJSON := fs.Bool("json", false, "print a JSON array")
		return func(ctx context.Context, env *cmdEnv, args []string) error {
			store, err := openReader(env)
			if err != nil {
				return err
			}
			defer store.Close()
			list, err := store.Tickets(ctx, threads.TicketFilter{Status: *status, Queue: *queue, Overdue: *overdue})
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(env.stdout, list)
			}
			tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "#\tSTATUS\tQUEUE\tCATEGORY\tMSGS\tUPDATED\tDUE\tSLA\tCUSTOMER\tSUBJECT")
			for _, t := range list {
				due := "-"
				if t.Due != nil {
					due = t.Due.Format("2006-01-02 15:04")
				}
				fmt.Fprintf(tw, "#%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Status, t.Queue, t.Category,
					t.MessageCount, t.Updated.Format("2006-01-02 15:04"), due, orDash(t.SLA), t.Customer, ellipsis(t.Subject, 60))
			}
			return tw.Flush()
		}
	},
}

var showCommand = command{
	summary: "show one ticket with its messages (-inbox N: a received message, filed or set aside; -outbox N: a mail as sent)",
	usage:   "N",
	setup: func(fs *flag.FlagSet) func(context.Context, *cmdEnv, []string) error {
		asJSON := fs.Bool("json", false, "print one JSON object")
		inbox := fs.Bool("inbox", false, "N is a received message's number (as status lists it), not a ticket's")
		outbox := fs.Bool("outbox", false, "N is an outbound mail's number (show -json: delivery.outbox_id): print it exactly as sent")
		return func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) != 1 {
				return errors.New("usage: replydesk show N, or show -inbox N")
			}
			n, err := ticketNumber(args[0])
			if err != nil {
				return err
			}
			store, err := openReader(env)
			if err != nil {
				return err
			}
			defer store.Close()
			if *inbox {
				return showInbox(ctx, env, store, n, *asJSON)
			}
			if *outbox {
				raw, err := store.OutboundRaw(ctx, n)
				if err != nil {
					return err
				}
				_, err = env.stdout.Write(raw)
				return err
			}
			t, err := store.Ticket(ctx, n)
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(env.stdout, t)
			}
			printTicket(env.stdout, t)
			return nil
		}
	},
}

var exportCommand = command{
	summary: "print every ticket, messages included, as one JSON object per line",
	setup: func(fs *flag.FlagSet) func(context.Context, *cmdEnv, []string) error {
		since := fs.String("since", "", "only tickets updated at or after this time (RFC 3339 or YYYY-MM-DD)")
		return func(ctx context.Context, env *cmdEnv, args []string) error {
			var t time.Time
			if *since != "" {
				var err error
				if t, err = parseSince(*since); err != nil {
					return err
				}
			}
			store, err := openReader(env)
			if err != nil {
				return err
			}
			defer store.Close()
			enc := json.NewEncoder(env.stdout)
			return store.Export(ctx, t, func(tk threads.Ticket) error { return enc.Encode(tk) })
		}
	},
}

func parseSince(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("-since %q: use RFC 3339 (2026-01-02T15:04:05Z) or YYYY-MM-DD", s)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printTicket(w io.Writer, t threads.Ticket) {
	fmt.Fprintf(w, "#%d %s\n", t.ID, t.Subject)
	fmt.Fprintf(w, "status %s · queue %s · category %s · priority %s · customer %s", t.Status, t.Queue, t.Category, t.Priority, t.Customer)
	if t.Assignee != "" {
		fmt.Fprintf(w, " · assignee %s", t.Assignee)
	}
	fmt.Fprintf(w, "\ncreated %s · updated %s", t.Created.Format(time.RFC3339), t.Updated.Format(time.RFC3339))
	if t.Due != nil {
		fmt.Fprintf(w, " · first response due %s", t.Due.Format(time.RFC3339))
	}
	if t.FirstResponse != nil {
		fmt.Fprintf(w, " · first response %s (%s)", t.FirstResponse.Format(time.RFC3339), t.SLA)
	} else if t.SLA == "overdue" {
		fmt.Fprint(w, " · OVERDUE")
	}
	if t.Follows != nil {
		fmt.Fprintf(w, "\nfollows up #%d", *t.Follows)
	}
	if t.MergedInto != nil {
		fmt.Fprintf(w, "\nmerged into #%d (a late message linked them); its messages are there", *t.MergedInto)
	}
	fmt.Fprintln(w)
	for _, p := range t.Participants {
		fmt.Fprintf(w, "participant: %s (%s)\n", p.Address, p.Role)
	}
	for _, m := range t.Messages {
		if m.Direction == "out" {
			fmt.Fprintf(w, "\n--- out %s to %s, %s\n", m.Kind, strings.Join(m.To, ", "), m.Date.Format(time.RFC3339))
			printDelivery(w, m.Delivery)
		} else {
			fmt.Fprintf(w, "\n--- in %s from %s, %s (matched by %s)\n", m.Kind, m.From, m.Date.Format(time.RFC3339), m.MatchedBy)
		}
		if len(m.Flags) > 0 {
			fmt.Fprintf(w, "flags: %s\n", strings.Join(m.Flags, ", "))
		}
		for _, n := range m.Notes {
			fmt.Fprintf(w, "note: %s\n", n)
		}
		for _, a := range m.Attachments {
			fmt.Fprintf(w, "attachment: %s (%s, %d bytes)\n", a.Name, a.Type, a.Size)
		}
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(m.Text, "\n"))
	}
	if len(t.History) > 0 {
		fmt.Fprintln(w, "\nhistory:")
		for _, e := range t.History {
			fmt.Fprintf(w, "  %s  %-15s %s %s\n", e.At.Format(time.RFC3339), e.Kind, e.Actor, e.Detail)
		}
	}
}

func printDelivery(w io.Writer, d *threads.Delivery) {
	switch {
	case d == nil:
	case d.Status == "failed":
		fmt.Fprintf(w, "delivery failed after %d attempt(s): %s\n", d.Attempts, d.LastError)
	case d.Status == "queued" && d.Attempts > 0:
		fmt.Fprintf(w, "delivery: retrying after %d attempt(s), next %s: %s\n", d.Attempts, timeOrNever(d.NextAttempt), d.LastError)
	default:
		fmt.Fprintf(w, "delivery: %s\n", d.Status)
	}
	if d != nil && d.OutboxID != 0 {
		fmt.Fprintf(w, "(as sent: replydesk show -outbox %d)\n", d.OutboxID)
	}
}

func ellipsis(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// showInbox prints one received message: envelope, where filing stands, header block.
func showInbox(ctx context.Context, env *cmdEnv, store *threads.Store, n int64, asJSON bool) error {
	m, err := store.InboxMessage(ctx, n)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env.stdout, m)
	}
	w := env.stdout
	fmt.Fprintf(w, "message %d, received %s over %s from %s, %d bytes\n", m.ID, m.Received.Format(time.RFC3339), m.Path, orDash(m.Remote), m.Size)
	fmt.Fprintf(w, "envelope: from <%s> to %s\n", m.MailFrom, strings.Join(m.Rcpts, ", "))
	switch m.State {
	case "filed":
		fmt.Fprintf(w, "filed into ticket #%d\n", m.Ticket)
	case "set_aside":
		fmt.Fprintf(w, "SET ASIDE after %d attempts: %s\n  fix the cause, then: replydesk refile %d\n", m.Attempts, m.Reason, m.ID)
	case "not_filed":
		fmt.Fprintf(w, "kept, filed into no ticket: %s\n", m.Reason)
	default:
		fmt.Fprintf(w, "waiting to be filed (%d failed attempts; last error: %s)\n", m.Attempts, orDash(m.Reason))
	}
	fmt.Fprintf(w, "\n%s\n", m.Header)
	return nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/replydesk/replydesk/mailin"
	"github.com/replydesk/replydesk/threads"
)

var replyCommand = command{
	summary: "answer ticket N as an agent, as if by mail (#commands at the top work the same); serve sends it",
	usage:   "N",
	setup:   agentMailCommand(""),
}

var noteCommand = command{
	summary: "add an internal note to ticket N as an agent (the queue's other agents are told)",
	usage:   "N",
	setup:   agentMailCommand("#note\n"),
}

// agentMailCommand builds reply and note: the text becomes a mail from the agent to the
// ticket's agent reply address, stored and filed exactly like one that came by SMTP.
func agentMailCommand(prefix string) func(fs *flag.FlagSet) func(context.Context, *cmdEnv, []string) error {
	return func(fs *flag.FlagSet) func(context.Context, *cmdEnv, []string) error {
		as := fs.String("as", "", "the agent's address (an [[agent]] email)")
		text := fs.String("m", "", "the text")
		file := fs.String("f", "", "read the text from this file (- for stdin)")
		return func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) != 1 {
				return errors.New("usage: replydesk reply|note N -as AGENT (-m TEXT | -f FILE)")
			}
			n, err := ticketNumber(args[0])
			if err != nil {
				return err
			}
			body, err := agentText(env, *text, *file)
			if err != nil {
				return err
			}
			agent, err := env.cfg.agent(*as)
			if err != nil {
				return err
			}
			store, err := openFilingStore(env)
			if err != nil {
				return err
			}
			defer store.Close()
			tk, err := store.Ticket(ctx, n)
			if err != nil {
				return err
			}
			raw, err := agentMail(env.cfg, store.Tokens(), tk, agent, prefix+body)
			if err != nil {
				return err
			}
			rc, err := store.Accept(ctx, mailin.Envelope{Path: mailin.PathShell, MailFrom: agent.Email,
				Rcpts: []string{env.cfg.Address[0].Email}, Live: true}, raw)
			if err != nil {
				return err
			}
			if _, err := store.ProcessPending(ctx); err != nil {
				return fmt.Errorf("stored as message %d, but filing failed (serve will retry): %w", rc.ID, err)
			}
			m, err := store.InboxMessage(ctx, rc.ID)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "message %d filed into #%d; a running serve sends what it causes\n", rc.ID, m.Ticket)
			return nil
		}
	}
}

func agentText(env *cmdEnv, text, file string) (string, error) {
	switch {
	case text != "" && file != "":
		return "", errors.New("give -m or -f, not both")
	case text != "":
		return text, nil
	case file == "-":
		b, err := io.ReadAll(io.LimitReader(env.stdin, 1<<20))
		return string(b), err
	case file != "":
		b, err := os.ReadFile(file)
		return string(b), err
	}
	return "", errors.New("the text: -m TEXT or -f FILE")
}

// agent finds a configured agent by address.
func (c fileConfig) agent(email string) (agentTable, error) {
	for _, a := range c.Agent {
		if strings.EqualFold(a.Email, email) {
			return a, nil
		}
	}
	var known []string
	for _, a := range c.Agent {
		known = append(known, a.Email)
	}
	return agentTable{}, fmt.Errorf("-as %q is not an [[agent]] (configured: %s)", email, strings.Join(known, ", "))
}

// agentMail is the mail an agent's mail client would send: to the ticket's agent reply
// address, from the agent.
func agentMail(c fileConfig, tokens *threads.Tokens, tk threads.Ticket, agent agentTable, text string) ([]byte, error) {
	support := c.Address[0].Email
	local, domain, _ := strings.Cut(support, "@")
	var h mail.Header
	h.SetDate(time.Now())
	h.SetAddressList("From", []*mail.Address{{Name: agent.Name, Address: agent.Email}})
	h.SetAddressList("To", []*mail.Address{{Address: local + "+" + tokens.Agent(tk.ID, agent.Email) + "@" + domain}})
	h.SetSubject(fmt.Sprintf("Re: [%s #%d] %s", c.Helpdesk.Name, tk.ID, tk.Subject))
	if err := h.GenerateMessageIDWithHostname(domain); err != nil {
		return nil, err
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	var b strings.Builder
	w, err := mail.CreateSingleInlineWriter(&b, h)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(w, text); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/replydesk/replydesk/mailout"
	"github.com/replydesk/replydesk/templates"
	"github.com/replydesk/replydesk/threads"
)

// responder builds the mail policy and composer from the configuration.
func (c fileConfig) responder(tokens *threads.Tokens, log *slog.Logger) (*mailout.Responder, error) {
	tpl, err := templates.Load(c.Outbound.Templates)
	if err != nil {
		return nil, err
	}
	rc := mailout.ResponderConfig{
		Helpdesk: c.Helpdesk.Name, DefaultLanguage: c.Helpdesk.DefaultLanguage, From: c.Outbound.From,
		Policy: mailout.Policy{RecentLimit: c.Outbound.AutoRepliesPer10m, DayLimit: c.Outbound.AutoRepliesPerDay},
		Log:    log,
	}
	for _, a := range c.Address {
		rc.OurAddresses = append(rc.OurAddresses, a.Email)
	}
	for _, a := range c.Agent {
		rc.Agents = append(rc.Agents, mailout.Agent{Email: a.Email, Name: a.Name, Queues: a.Queues})
	}
	tc, err := c.threadsConfig()
	if err != nil {
		return nil, err
	}
	rc.SLA = tc.SLA
	if c.Outbound.DKIMKey != "" {
		domain := c.Outbound.DKIMDomain
		if domain == "" {
			from := c.Outbound.From
			if from == "" {
				from = c.Address[0].Email
			}
			domain = from[strings.LastIndexByte(from, '@')+1:]
		}
		if rc.DKIM, err = mailout.LoadDKIM(c.Outbound.DKIMKey, domain, c.Outbound.DKIMSelector); err != nil {
			return nil, err
		}
	}
	return mailout.NewResponder(rc, tpl, tokens), nil
}

// alerter mails [helpdesk] operator about failures that need a human (SPEC §10), and
// installs itself for mail that filing sets aside.
func (c fileConfig) alerter(store *threads.Store, tr mailout.Transport, log *slog.Logger) *mailout.Alerter {
	from := c.Outbound.From
	if from == "" {
		from = c.Address[0].Email
	}
	a := &mailout.Alerter{Operator: c.Helpdesk.Operator, From: from, Helpdesk: c.Helpdesk.Name,
		Claims: store, Transport: tr, Log: log}
	store.OnSetAside(func(inbox int64, reason string) {
		a.Alert("set_aside", "mail could not be filed", fmt.Sprintf(
			"Message %d was accepted and is stored, but it could not be filed into a ticket, so it was set aside:\n\n  %s\n\n"+
				"Nothing is lost and filing goes on with the mail after it. Once the cause is fixed, run\n\n"+
				"  replydesk refile %d      (or: replydesk refile all)\n\n"+
				"`replydesk show -inbox %d` prints the message's envelope and header.", inbox, reason, inbox, inbox))
	})
	return a
}

// transport is [outbound] transport: dir (default) or smtp.
func (c fileConfig) transport() (mailout.Transport, error) {
	o := c.Outbound
	if o.Transport != "smtp" {
		dir := o.Dir
		if dir == "" {
			dir = filepath.Join(c.Helpdesk.DataDir, "outbox")
		}
		return mailout.DirTransport{Dir: dir}, nil
	}
	password := o.Password
	if o.PasswordFile != "" {
		b, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("outbound.password_file: %w", err)
		}
		password = strings.TrimSpace(string(b))
	}
	return mailout.NewSMTPTransport(mailout.SMTPConfig{
		Addr: o.Smarthost, TLS: o.TLS, Username: o.Username, Password: password,
		Hostname: c.SMTP.Hostname, MaxConns: o.MaxConnections,
	}), nil
}

func (c fileConfig) retryPolicy() mailout.RetryPolicy {
	o := c.Outbound
	return mailout.RetryPolicy{Base: o.RetryBase.Duration, Max: o.RetryMax.Duration, MaxAttempts: o.MaxAttempts}
}

// Package imap takes mail from an existing mailbox (Dovecot, Gmail, Microsoft 365) over
// IMAP and ends, as every intake path does, in the store's durable accept.
//
// The order is what makes it safe: fetch with BODY.PEEK[] (nothing is marked \Seen
// before the commit), store the messages and the mailbox's checkpoint in one
// transaction, and only then move them to the processed mailbox (MOVE, else COPY, STORE
// \Deleted and UID EXPUNGE of exactly those UIDs; never a plain EXPUNGE) or flag them.
// A crash anywhere between fetch and move refetches what is above the checkpoint (the
// store keeps the same bytes once) and moves what is below it.
package imap

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Config is one [[imap]] mailbox.
type Config struct {
	Server   string // host:port
	TLS      string // TLSImplicit (default), TLSStartTLS, or TLSNone (loopback only)
	Username string
	Password string      // with Tokens nil: LOGIN
	Tokens   TokenSource // XOAUTH2 (Google, Microsoft 365); nil: password
	Mailbox  string      // default INBOX
	// Processed is where taken mail is moved; "" flags it (\Seen, $Replydesk) instead.
	Processed string
	// Sent is the account's Sent folder ("": none). Its mail (sent from a mail client,
	// outside replydesk) is taken in too, as mailin.PathIMAPSent, over a connection of its
	// own that opens it read-only (EXAMINE): nothing there is ever moved, flagged or
	// expunged, it is the user's folder. The checkpoint and the store's content digest
	// alone keep it exactly once.
	Sent string
	// Address is the support address the mailbox stands for: the envelope recipient of
	// its mail (its queue and category come from that [[address]]).
	Address         string
	MaxMessageBytes int64         // a larger message is left on the server, flagged (0: no cap)
	PollInterval    time.Duration // without IDLE (default 60s)
	// BackfillLive answers the mail found at the first sync too (default: silent, like
	// an import; mail arriving after it is answered).
	BackfillLive bool
	TLSConfig    *tls.Config // nil: the system roots, ServerName from Server

	// Tuning; zero values take the defaults.
	IdleRefresh            time.Duration // leave IDLE and look again at least this often (default 10m; servers drop IDLE at 30m)
	MinBackoff, MaxBackoff time.Duration // reconnect delays (default 1s doubling to 5m, with jitter)
	BatchBytes             int64         // message bytes per fetch and commit (default 8 MiB; at least one message)

	// Alert tells the operator (at most hourly per kind; see mailout.Alerter); nil: log only.
	Alert func(kind, subject, text string)

	sentFolder bool // this is the Sent folder's poller (New makes it from Sent)
}

// TLS modes.
const (
	TLSImplicit = "implicit"
	TLSStartTLS = "starttls"
	TLSNone     = "none"
)

// Keywords replydesk sets on the server.
const (
	KeywordTaken   = "$Replydesk"        // flag mode: taken in
	KeywordSkipped = "$ReplydeskSkipped" // left on the server: too large, or could not be fetched
)

func (c Config) withDefaults() Config {
	if c.TLS == "" {
		c.TLS = TLSImplicit
	}
	if c.Mailbox == "" {
		c.Mailbox = "INBOX"
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Minute
	}
	if c.IdleRefresh <= 0 || c.IdleRefresh > 28*time.Minute {
		c.IdleRefresh = 10 * time.Minute
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(5*time.Minute, c.MinBackoff)
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = 8 << 20
	}
	return c
}

// Validate reports every problem with c (check-config reports them with their lines).
func (c Config) Validate() []error {
	var errs []error
	host, _, err := net.SplitHostPort(c.Server)
	if err != nil {
		errs = append(errs, fmt.Errorf("server: must be host:port (e.g. imap.example.com:993)"))
	}
	switch c.TLS {
	case "", TLSImplicit, TLSStartTLS:
	case TLSNone:
		if err == nil && !Loopback(host) {
			errs = append(errs, fmt.Errorf("tls: none is allowed only for a server on loopback, not %s", host))
		}
	default:
		errs = append(errs, fmt.Errorf("tls: must be implicit, starttls or none, not %q", c.TLS))
	}
	if c.Username == "" {
		errs = append(errs, errors.New("username: must not be empty"))
	}
	if c.Tokens == nil && c.Password == "" {
		errs = append(errs, errors.New("password: a password (or password_file) is needed with auth = \"password\""))
	}
	if c.Processed != "" && strings.EqualFold(c.Processed, c.mailbox()) {
		errs = append(errs, fmt.Errorf("processed_mailbox: must differ from mailbox %q", c.mailbox()))
	}
	if c.Sent != "" && (strings.EqualFold(c.Sent, c.mailbox()) || strings.EqualFold(c.Sent, c.Processed)) {
		errs = append(errs, fmt.Errorf("sent_mailbox: must differ from mailbox %q and processed_mailbox %q", c.mailbox(), c.Processed))
	}
	if c.Address == "" {
		errs = append(errs, errors.New("address: must name the support address this mailbox stands for"))
	}
	return errs
}

func (c Config) mailbox() string {
	if c.Mailbox == "" {
		return "INBOX"
	}
	return c.Mailbox
}

// Key names the mailbox in the store (checkpoint, status): imap://user@server/MAILBOX.
func (c Config) Key() string {
	return "imap://" + c.Username + "@" + c.Server + "/" + c.mailbox()
}

// SentKey names the Sent folder in the store, as Key names the mailbox; "" without one.
func (c Config) SentKey() string {
	if c.Sent == "" {
		return ""
	}
	return c.sentConfig().Key()
}

// sentConfig is the configuration of the Sent folder's poller: the same account, the
// Sent folder read-only, nothing moved. What is there at the first sync is always taken
// in silently: nothing in it is ever answered anyway, and old replies must not change
// their tickets' status (BackfillLive is about answering old mail).
func (c Config) sentConfig() Config {
	c.Mailbox, c.Processed, c.Sent, c.sentFolder, c.BackfillLive = c.Sent, "", "", true, false
	return c
}

// Loopback: host is a loopback address or localhost, where tls = "none" is allowed.
func Loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

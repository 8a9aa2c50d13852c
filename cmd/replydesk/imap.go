package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/replydesk/replydesk/mailin/imap"
	"github.com/replydesk/replydesk/mailout"
	"github.com/replydesk/replydesk/threads"
)

// imapTable is one [[imap]] mailbox (SPEC §2.2, §8), documented in config.example.toml.
type imapTable struct {
	Server           string   `toml:"server"`
	TLS              string   `toml:"tls"`
	Address          string   `toml:"address"`
	Username         string   `toml:"username"`
	Auth             string   `toml:"auth"`
	Password         string   `toml:"password"`
	PasswordFile     string   `toml:"password_file"`
	TokenURL         string   `toml:"token_url"`
	ClientID         string   `toml:"client_id"`
	ClientSecret     string   `toml:"client_secret"`
	ClientSecretFile string   `toml:"client_secret_file"`
	RefreshTokenFile string   `toml:"refresh_token_file"`
	Scope            string   `toml:"scope"`
	Mailbox          string   `toml:"mailbox"`
	ProcessedMailbox string   `toml:"processed_mailbox"`
	SentMailbox      string   `toml:"sent_mailbox"`
	PollInterval     duration `toml:"poll_interval"`
	BackfillNotify   bool     `toml:"backfill_notify"`
}

// validateIMAP checks every [[imap]] table; a mistake in one never hides another.
func (c fileConfig) validateIMAP() []problem {
	var ps []problem
	seen := map[string]bool{}
	for i, im := range c.IMAP {
		add := func(field, format string, a ...any) {
			ps = append(ps, problem{fmt.Sprintf("imap[%d].%s", i, field), fmt.Sprintf(format, a...)})
		}
		host, _, err := net.SplitHostPort(im.Server)
		if err != nil || host == "" {
			add("server", "must be host:port, e.g. imap.gmail.com:993")
		}
		switch im.TLS {
		case "", imap.TLSImplicit, imap.TLSStartTLS:
		case imap.TLSNone:
			if err == nil && !imap.Loopback(host) {
				add("tls", "none sends the password in clear text: allowed only for a server on loopback, not %s", host)
			}
		default:
			add("tls", "must be implicit, starttls or none, not %q", im.TLS)
		}
		if !c.isAddress(im.Address) {
			add("address", "must be one of the [[address]] emails (the support address this mailbox stands for), not %q", im.Address)
		}
		if im.Username == "" {
			add("username", "must not be empty")
		}
		switch im.Auth {
		case "", "password":
			switch {
			case im.Password != "" && im.PasswordFile != "":
				add("password", "set password or password_file, not both")
			case im.Password == "" && im.PasswordFile == "":
				add("password", "set password or password_file (auth = \"password\")")
			case im.PasswordFile != "":
				if _, err := os.Stat(im.PasswordFile); err != nil {
					add("password_file", "%v", err)
				}
			}
		case "xoauth2":
			ps = append(ps, im.validateOAuth(i)...)
		default:
			add("auth", "must be password or xoauth2, not %q", im.Auth)
		}
		mbox := orDefault(im.Mailbox, "INBOX")
		if im.ProcessedMailbox != "" && strings.EqualFold(im.ProcessedMailbox, mbox) {
			add("processed_mailbox", "must differ from mailbox %q", mbox)
		}
		switch sent := im.SentMailbox; {
		case sent == "":
		case strings.TrimSpace(sent) == "":
			add("sent_mailbox", "must name the Sent folder (e.g. \"Sent\", \"[Gmail]/Sent Mail\", \"Sent Items\"), or be left out")
		case strings.EqualFold(sent, mbox) || strings.EqualFold(sent, im.ProcessedMailbox):
			add("sent_mailbox", "must differ from mailbox %q and processed_mailbox %q: it is read, never changed", mbox, im.ProcessedMailbox)
		}
		if im.PollInterval.Duration != 0 && im.PollInterval.Duration < time.Second {
			add("poll_interval", "must be at least 1s")
		}
		key := im.config().Key()
		if seen[strings.ToLower(key)] {
			add("mailbox", "the same mailbox (%s) is configured twice", key)
		}
		seen[strings.ToLower(key)] = true
		if sent := im.config().SentKey(); sent != "" {
			if seen[strings.ToLower(sent)] {
				add("sent_mailbox", "the same mailbox (%s) is configured twice", sent)
			}
			seen[strings.ToLower(sent)] = true
		}
	}
	return ps
}

func (im imapTable) validateOAuth(i int) []problem {
	var ps []problem
	add := func(field, format string, a ...any) {
		ps = append(ps, problem{fmt.Sprintf("imap[%d].%s", i, field), fmt.Sprintf(format, a...)})
	}
	if u, err := url.Parse(im.TokenURL); err != nil || u.Host == "" ||
		!(u.Scheme == "https" || u.Scheme == "http" && imap.Loopback(u.Hostname())) {
		add("token_url", "must be the https URL of the OAuth2 token endpoint (e.g. https://oauth2.googleapis.com/token)")
	}
	if im.ClientID == "" {
		add("client_id", "must not be empty with auth = \"xoauth2\"")
	}
	if im.ClientSecret != "" && im.ClientSecretFile != "" {
		add("client_secret", "set client_secret or client_secret_file, not both")
	}
	if im.ClientSecretFile != "" {
		if _, err := os.Stat(im.ClientSecretFile); err != nil {
			add("client_secret_file", "%v", err)
		}
	}
	if im.Password != "" || im.PasswordFile != "" {
		add("password", "not used with auth = \"xoauth2\"; remove it")
	}
	switch fi, err := os.Stat(im.RefreshTokenFile); {
	case im.RefreshTokenFile == "":
		add("refresh_token_file", "must name the file holding the refresh token (replydesk writes a rotated one back)")
	case err != nil:
		add("refresh_token_file", "%v", err)
	case fi.Mode().Perm()&0o077 != 0:
		add("refresh_token_file", "is readable by others (mode %v): chmod 600 %s", fi.Mode().Perm(), im.RefreshTokenFile)
	}
	return ps
}

func (c fileConfig) isAddress(addr string) bool {
	for _, a := range c.Address {
		if strings.EqualFold(a.Email, addr) {
			return true
		}
	}
	return false
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// config is the poller's configuration, secrets not yet read (imapConfigs reads them).
func (im imapTable) config() imap.Config {
	return imap.Config{
		Server: im.Server, TLS: im.TLS, Username: im.Username, Password: im.Password,
		Mailbox: orDefault(im.Mailbox, "INBOX"), Processed: im.ProcessedMailbox, Sent: im.SentMailbox,
		Address: im.Address, PollInterval: im.PollInterval.Duration, BackfillLive: im.BackfillNotify,
	}
}

// imapConfigs turns the [[imap]] tables into poller configurations, reading the
// password and client secret files.
func (c fileConfig) imapConfigs(alert func(kind, subject, text string)) ([]imap.Config, error) {
	var out []imap.Config
	for i, im := range c.IMAP {
		cfg := im.config()
		cfg.MaxMessageBytes, cfg.Alert = c.SMTP.MaxMessageBytes, alert
		if im.PasswordFile != "" {
			p, err := readSecret(im.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("imap[%d].password_file: %w", i, err)
			}
			cfg.Password = p
		}
		if im.Auth == "xoauth2" {
			secret := im.ClientSecret
			if im.ClientSecretFile != "" {
				s, err := readSecret(im.ClientSecretFile)
				if err != nil {
					return nil, fmt.Errorf("imap[%d].client_secret_file: %w", i, err)
				}
				secret = s
			}
			cfg.Tokens = &imap.OAuth2{TokenURL: im.TokenURL, ClientID: im.ClientID, ClientSecret: secret,
				Scope: im.Scope, Refresh: refreshFile(im.RefreshTokenFile)}
		}
		out = append(out, cfg)
	}
	return out, nil
}

func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

// newPollers builds a poller per [[imap]] table; runPollers starts them.
func newPollers(env *cmdEnv, store *threads.Store, alerter *mailout.Alerter) ([]*imap.Poller, error) {
	cfgs, err := env.cfg.imapConfigs(alerter.Alert)
	if err != nil {
		return nil, err
	}
	pollers := make([]*imap.Poller, 0, len(cfgs))
	for _, cfg := range cfgs {
		p, err := imap.New(cfg, store, env.log)
		if err != nil {
			return nil, err
		}
		pollers = append(pollers, p)
	}
	return pollers, nil
}

// runPollers runs the pollers until ctx ends; wait returns once each has finished the
// batch in hand and logged out (serve calls it during its shutdown).
func runPollers(ctx context.Context, pollers []*imap.Poller) (wait func()) {
	var wg sync.WaitGroup
	for _, p := range pollers {
		wg.Add(1)
		go func() { defer wg.Done(); p.Run(ctx) }()
	}
	return wg.Wait
}

// refreshFile keeps an OAuth2 refresh token in a file. Save replaces it durably: a temp
// file in the same directory (mode 0600), fsynced, renamed over the old one, and the
// directory fsynced; a crash leaves the old token or the new one, never neither.
type refreshFile string

func (f refreshFile) Load() (string, error) { return readSecret(string(f)) }

func (f refreshFile) Save(token string) error {
	return writeFileDurably(string(f), []byte(token+"\n"), 0o600)
}

func writeFileDurably(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, there is nothing to remove
	_, werr := tmp.Write(data)
	if err := errors.Join(werr, tmp.Chmod(perm), tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if err := threads.SyncDir(dir); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

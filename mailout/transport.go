package mailout

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/replydesk/replydesk/threads"
)

// Transport hands one mail on. An *smtp.SMTPError with a 5xx code is a permanent failure;
// any other error is temporary and the mail is retried.
type Transport interface {
	Send(ctx context.Context, from string, to []string, raw []byte) error
	Close() error
}

// DirTransport writes each mail as an .eml file (the default: nothing leaves the machine).
type DirTransport struct{ Dir string }

// Send writes the file under a temporary name, syncs it, links it into place under a
// new name and syncs the directory: when Send returns nil the mail survives a crash or
// power loss, as a mail a smarthost answered 250 for would. The name is bounded (time,
// at most 48 sanitized bytes of the recipient, random), so no address makes it too long,
// and a link never replaces a file already there.
func (d DirTransport) Send(_ context.Context, from string, to []string, raw []byte) error {
	if err := threads.MkdirDurable(d.Dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(d.Dir, ".tmp-*.eml")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	env := fmt.Sprintf("X-Replydesk-Envelope-From: <%s>\r\nX-Replydesk-Envelope-To: <%s>\r\n", from, strings.Join(to, ">, <"))
	_, werr := f.Write(append([]byte(env), raw...))
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return err
	}
	rcpt := ""
	if len(to) > 0 {
		rcpt = to[0]
	}
	for {
		var rnd [4]byte
		rand.Read(rnd[:])
		name := fmt.Sprintf("%d-%s-%x.eml", time.Now().UnixNano(), fileSafe(rcpt, 48), rnd)
		err := os.Link(f.Name(), filepath.Join(d.Dir, name))
		if errors.Is(err, os.ErrExist) {
			continue // the same nanosecond and random: try another name
		}
		if err != nil {
			return err
		}
		return threads.SyncDir(d.Dir)
	}
}

// fileSafe keeps at most max bytes of s, with every byte but [A-Za-z0-9.+-] as '_'.
func fileSafe(s string, max int) string {
	b := []byte(s)
	if len(b) > max {
		b = b[:max]
	}
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '+' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

// Close does nothing.
func (DirTransport) Close() error { return nil }

// SMTPConfig is the smarthost.
type SMTPConfig struct {
	Addr               string // host:port
	TLS                string // starttls (default), implicit, none (loopback only)
	Username, Password string
	Hostname           string // our EHLO name
	MaxConns           int    // connections kept open and used in parallel
	Timeout            time.Duration
	TLSConfig          *tls.Config // nil: verify the smarthost's certificate for its host name
}

// SMTPTransport delivers to one smarthost and reuses its connections.
type SMTPTransport struct {
	cfg  SMTPConfig
	idle chan *smtp.Client
	sem  chan struct{}
	mu   sync.Mutex
}

// NewSMTPTransport keeps at most cfg.MaxConns connections.
func NewSMTPTransport(cfg SMTPConfig) *SMTPTransport {
	if cfg.MaxConns < 1 {
		cfg.MaxConns = 4
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Minute
	}
	return &SMTPTransport{cfg: cfg, idle: make(chan *smtp.Client, cfg.MaxConns), sem: make(chan struct{}, cfg.MaxConns)}
}

// Send delivers one mail over a pooled connection. Per-recipient refusals count: if any
// recipient is refused, the mail fails with that reply (one recipient per mail here).
func (t *SMTPTransport) Send(ctx context.Context, from string, to []string, raw []byte) error {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-t.sem }()
	c, err := t.client()
	if err != nil {
		return err
	}
	err = send(c, from, to, raw)
	var se *smtp.SMTPError
	switch {
	case err == nil:
		t.release(c)
	case errors.As(err, &se):
		if c.Reset() == nil {
			t.release(c)
		} else {
			c.Close()
		}
	default:
		c.Close() // transport trouble: drop the connection
	}
	return err
}

func send(c *smtp.Client, from string, to []string, raw []byte) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(raw); err != nil {
		return err
	}
	return w.Close()
}

func (t *SMTPTransport) client() (*smtp.Client, error) {
	select {
	case c := <-t.idle:
		return c, nil
	default:
		return t.dial()
	}
}

func (t *SMTPTransport) release(c *smtp.Client) {
	select {
	case t.idle <- c:
	default:
		c.Quit()
	}
}

func (t *SMTPTransport) dial() (*smtp.Client, error) {
	host, _, err := net.SplitHostPort(t.cfg.Addr)
	if err != nil {
		return nil, err
	}
	tlsCfg := t.cfg.TLSConfig
	if tlsCfg == nil {
		tlsCfg = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	dialer := &net.Dialer{Timeout: t.cfg.Timeout}
	var conn net.Conn
	if t.cfg.TLS == "implicit" {
		conn, err = tls.DialWithDialer(dialer, "tcp", t.cfg.Addr, tlsCfg)
	} else {
		conn, err = dialer.Dial("tcp", t.cfg.Addr)
	}
	if err != nil {
		return nil, err
	}
	var c *smtp.Client
	if t.cfg.TLS == "starttls" || t.cfg.TLS == "" {
		// EHLO, STARTTLS, then EHLO again with our name; fails when STARTTLS is not offered.
		if c, err = smtp.NewClientStartTLS(conn, tlsCfg); err != nil {
			conn.Close()
			return nil, fmt.Errorf("STARTTLS with smarthost %s (tls = \"none\" is for a smarthost on loopback only): %w", t.cfg.Addr, err)
		}
	} else {
		c = smtp.NewClient(conn)
	}
	c.CommandTimeout, c.SubmissionTimeout = t.cfg.Timeout, t.cfg.Timeout
	if err := c.Hello(t.cfg.Hostname); err != nil {
		c.Close()
		return nil, err
	}
	if t.cfg.Username != "" {
		if err := t.auth(c); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func (t *SMTPTransport) auth(c *smtp.Client) error {
	_, mechs := c.Extension("AUTH")
	if strings.Contains(strings.ToUpper(mechs), "PLAIN") || mechs == "" {
		return c.Auth(sasl.NewPlainClient("", t.cfg.Username, t.cfg.Password))
	}
	return c.Auth(sasl.NewLoginClient(t.cfg.Username, t.cfg.Password))
}

// Close ends the idle connections.
func (t *SMTPTransport) Close() error {
	for {
		select {
		case c := <-t.idle:
			c.Quit()
		default:
			return nil
		}
	}
}

// Permanent tells whether a delivery error means the mail can never go (a 5xx reply).
func Permanent(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code >= 500 && se.Code < 600
}

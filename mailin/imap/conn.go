package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

const dialTimeout = 30 * time.Second

// dial connects and secures the connection as c.TLS says. kick is signalled (never
// blocking: the handler runs on the client's reader) when the server reports new mail.
func (p *Poller) dial(ctx context.Context, kick chan<- struct{}) (*imapclient.Client, error) {
	cfg := p.cfg
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.Server, err)
	}
	opts := &imapclient.Options{
		TLSConfig: p.tlsConfig(),
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(m *imapclient.UnilateralDataMailbox) {
				if m.NumMessages != nil {
					signal(kick)
				}
			},
		},
	}
	switch cfg.TLS {
	case TLSImplicit:
		tc := tls.Client(conn, opts.TLSConfig)
		hctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS with %s: %w", cfg.Server, err)
		}
		return imapclient.New(tc, opts), nil
	case TLSStartTLS:
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer stop()
		c, err := imapclient.NewStartTLS(conn, opts)
		if err != nil {
			return nil, fmt.Errorf("STARTTLS with %s: %w", cfg.Server, err)
		}
		return c, nil
	default: // TLSNone, loopback only (Validate)
		return imapclient.New(conn, opts), nil
	}
}

func (p *Poller) tlsConfig() *tls.Config {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if p.cfg.TLSConfig != nil {
		tc = p.cfg.TLSConfig.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(p.cfg.Server)
	}
	return tc
}

func signal(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// errAuth marks a login the server refused (wrong password, revoked token): status
// says so, and the operator hears about it when it keeps failing.
type errAuth struct{ error }

func (e errAuth) Unwrap() error { return e.error }

// login authenticates with the password, or with XOAUTH2 and an access token that is
// refreshed before it expires. A refused token is dropped, so the next connection
// (after the reconnect delay) gets a new one: it may have been revoked early.
func (p *Poller) login(ctx context.Context, c *imapclient.Client) error {
	if p.cfg.Tokens == nil {
		if err := c.Login(p.cfg.Username, p.cfg.Password).Wait(); err != nil {
			return loginError("LOGIN", err)
		}
		return nil
	}
	tok, err := p.cfg.Tokens.Token(ctx)
	if err != nil {
		return err
	}
	if err := c.Authenticate(xoauth2{user: p.cfg.Username, token: tok.Access}); err != nil {
		p.cfg.Tokens.Invalidate()
		return loginError("AUTHENTICATE XOAUTH2", err)
	}
	p.renewAt = tok.RenewAt()
	return nil
}

// loginError tells a refusal (wrong password, revoked token: errAuth) from trouble on
// the way (the connection dropped).
func loginError(how string, err error) error {
	var ie *imap.Error
	var refused xoauth2Refused
	if errors.As(err, &ie) || errors.As(err, &refused) {
		return errAuth{fmt.Errorf("%s refused: %w", how, err)}
	}
	return fmt.Errorf("%s: %w", how, err)
}

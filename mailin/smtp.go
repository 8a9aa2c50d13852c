package mailin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// Config is the [smtp] table: the SMTP and LMTP listeners.
type Config struct {
	Listen           string        // SMTP, host:port; "" for none
	LMTP             string        // LMTP, host:port or a unix socket path; "" for none
	Hostname         string        // name in the greeting
	Addresses        []string      // support addresses we accept RCPT for (and +tag forms)
	MaxMessageBytes  int64         // advertised with SIZE, enforced with 552
	MaxRecipients    int           // RCPTs per message, beyond it 452
	MaxSessions      int           // concurrent connections per listener
	MaxSessionsPerIP int           // concurrent connections from one client address
	ReadTimeout      time.Duration // per command; bounds the whole DATA transfer too
	WriteTimeout     time.Duration
	ShutdownGrace    time.Duration // how long in-flight sessions may finish after a stop
	TLSCert, TLSKey  string        // files; STARTTLS is offered when both are set
}

// Server runs the SMTP and LMTP listeners over one Acceptor.
type Server struct {
	cfg    Config
	acc    Acceptor
	log    *slog.Logger
	rcpts  recipients
	tls    *tls.Config
	ctx    context.Context // cancelled when shutdown gives up on in-flight sessions
	cancel context.CancelFunc

	servers      []*smtp.Server
	listeners    []*limitListener
	inflight     sync.WaitGroup // Accept calls under way
	shuttingDown atomic.Bool
}

// NewServer checks cfg and loads the TLS certificate; Start opens the listeners.
func NewServer(cfg Config, acc Acceptor, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, acc: acc, log: log, rcpts: newRecipients(cfg.Addresses)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate: %w", err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return s, nil
}

// Start opens the configured listeners and serves them in the background. It returns
// the addresses actually bound (useful with port 0), SMTP first.
func (s *Server) Start() (smtpAddr, lmtpAddr net.Addr, err error) {
	if s.cfg.Listen != "" {
		if smtpAddr, err = s.listen(PathSMTP, "tcp", s.cfg.Listen); err != nil {
			return nil, nil, err
		}
	}
	if s.cfg.LMTP != "" {
		network := "tcp"
		if strings.Contains(s.cfg.LMTP, "/") {
			network = "unix"
			os.Remove(s.cfg.LMTP) // a stale socket from a previous run
		}
		if lmtpAddr, err = s.listen(PathLMTP, network, s.cfg.LMTP); err != nil {
			s.closeListeners()
			return nil, nil, err
		}
	}
	return smtpAddr, lmtpAddr, nil
}

func (s *Server) listen(path, network, addr string) (net.Addr, error) {
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener: %w", path, err)
	}
	ll := newLimitListener(ln, s.cfg.MaxSessions, s.cfg.MaxSessionsPerIP)
	srv := smtp.NewServer(&backend{s: s, path: path})
	srv.LMTP = path == PathLMTP
	srv.Domain = s.cfg.Hostname
	srv.MaxMessageBytes = s.cfg.MaxMessageBytes
	srv.MaxRecipients = s.cfg.MaxRecipients
	// go-smtp applies the line limit to DATA lines too; real mail has long lines (and the
	// spec promises a clear answer for megabyte header lines), so allow well past RFC 5322.
	srv.MaxLineLength = 4 << 20
	srv.ReadTimeout = s.cfg.ReadTimeout
	srv.WriteTimeout = s.cfg.WriteTimeout
	srv.TLSConfig = s.tls
	srv.ErrorLog = slogAdapter{s.log.With("path", path)}
	s.servers = append(s.servers, srv)
	s.listeners = append(s.listeners, ll)
	go func() {
		if err := srv.Serve(ll); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			s.log.Error("listener stopped", "path", path, "err", err)
		}
	}()
	s.log.Info("listening", "path", path, "addr", ln.Addr().String())
	return ln.Addr(), nil
}

func (s *Server) closeListeners() {
	for _, ll := range s.listeners {
		ll.Close()
	}
}

// Shutdown stops accepting connections at once, closes idle sessions, lets sessions in
// the middle of a message finish for up to the grace period, then closes the rest and
// waits for any message already handed to the store. A client cut off before its reply
// never got 250, so it retries: nothing acknowledged is lost.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shuttingDown.Store(true)
	grace := s.cfg.ShutdownGrace
	gctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range s.servers {
		wg.Add(1)
		go func() { defer wg.Done(); srv.Shutdown(gctx) }()
	}
	for _, ll := range s.listeners {
		ll.closeConns(true)
	}
	wg.Wait()
	for _, ll := range s.listeners {
		ll.closeConns(false)
	}
	s.cancel()
	s.inflight.Wait()
	return nil
}

// slogAdapter lets go-smtp log through slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Printf(format string, v ...any) { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Println(v ...any)               { a.l.Warn(fmt.Sprint(v...)) }

type backend struct {
	s    *Server
	path string
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: b.s, path: b.path, conn: c, tc: trackedOf(c.Conn())}, nil
}

// session is one SMTP or LMTP conversation. It implements smtp.LMTPSession too; go-smtp
// only calls LMTPData on the LMTP listener.
type session struct {
	s     *Server
	path  string
	conn  *smtp.Conn
	tc    *trackedConn
	from  string
	rcpts []string
}

func (ss *session) setBusy(b bool) {
	if ss.tc != nil {
		ss.tc.busy.Store(b)
	}
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if strings.ContainsAny(from, "\r\n\x00") {
		return replyBadSender
	}
	ss.from, ss.rcpts = from, nil
	ss.setBusy(true)
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !ss.s.rcpts.accepts(to) {
		ss.s.log.Info("recipient refused", "path", ss.path, "rcpt", to, "remote", ss.remote())
		return replyNoSuchUser
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	err := ss.receive(r)
	if rep := replyForData(err, ss.s.log); rep != nil {
		return rep
	}
	return nil
}

func (ss *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	rep := replyForData(ss.receive(r), ss.s.log)
	for _, rcpt := range ss.rcpts {
		if rep != nil {
			status.SetStatus(rcpt, rep)
		} else {
			status.SetStatus(rcpt, nil)
		}
	}
	return nil
}

// receive reads the message and hands it to the store; nil means it is on disk.
func (ss *session) receive(r io.Reader) error {
	defer ss.setBusy(false)
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.inflight.Add(1)
	defer ss.s.inflight.Done()
	if ss.s.ctx.Err() != nil {
		return replyShuttingDown
	}
	env := Envelope{
		Path: ss.path, Remote: ss.remote(), Helo: ss.conn.Hostname(), MailFrom: ss.from,
		Rcpts: ss.rcpts, Received: time.Now(), Live: true,
	}
	rc, err := ss.s.acc.Accept(context.WithoutCancel(ss.s.ctx), env, raw)
	if err != nil {
		return err
	}
	ss.s.log.Debug("message accepted", "path", ss.path, "inbox", rc.ID, "duplicate", rc.Duplicate, "bytes", len(raw))
	return nil
}

func (ss *session) remote() string {
	if a := ss.conn.Conn().RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Reset runs after every transaction (go-smtp calls it once the DATA reply is written)
// and on RSET. During shutdown it ends the session: its reply is out, nothing is pending.
func (ss *session) Reset() {
	ss.from, ss.rcpts = "", nil
	ss.setBusy(false)
	if ss.s.shuttingDown.Load() && ss.tc != nil {
		// Not ss.conn.Close: go-smtp holds the connection's lock while calling Reset.
		ss.tc.Close()
	}
}

func (ss *session) Logout() error { return nil }

package mailin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime/debug"
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

	// Memory: message bytes held across all sessions of both listeners, from the first
	// byte read until the store has them; beyond it 451 4.3.1. 0: no bound.
	MaxInflightBytes int64
	InflightWait     time.Duration // how long a message may wait for room before 451

	// Sessions that hold a slot without sending mail (see guard.go).
	JunkCommandLimit int           // commands that move no mail, per delivery; beyond it 421. 0: no limit
	StressPercent    int           // share of MaxSessions open at which stress timeouts apply; 0: never
	StressTimeout    time.Duration // under stress, a session must make progress this often

	// GoMemoryLimit, if set, is the Go runtime's soft memory limit from Start on, unless
	// one is set already (GOMEMLIMIT). Finished messages are garbage that the collector
	// would otherwise only reclaim once the heap has doubled: twice the budget.
	GoMemoryLimit int64
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
	budget       *budget        // message bytes in memory, across both listeners
	inflight     sync.WaitGroup // Accept calls under way
	shuttingDown atomic.Bool
}

// NewServer checks cfg and loads the TLS certificate; Start opens the listeners.
func NewServer(cfg Config, acc Acceptor, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, acc: acc, log: log, rcpts: newRecipients(cfg.Addresses), budget: newBudget(cfg.MaxInflightBytes)}
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
	if s.cfg.GoMemoryLimit > 0 && debug.SetMemoryLimit(-1) == math.MaxInt64 {
		debug.SetMemoryLimit(s.cfg.GoMemoryLimit)
		s.log.Info("Go memory limit set", "bytes", s.cfg.GoMemoryLimit)
	}
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
	lim := sessionLimits{
		max: s.cfg.MaxSessions, perHost: s.cfg.MaxSessionsPerIP,
		junk: s.cfg.JunkCommandLimit, stressTimeout: s.cfg.StressTimeout,
	}
	if s.cfg.MaxSessions > 0 && s.cfg.StressPercent > 0 && s.cfg.StressTimeout > 0 {
		lim.stressAt = max(1, (s.cfg.MaxSessions*s.cfg.StressPercent+99)/100)
	}
	ll := newLimitListener(ln, lim, s.log.With("path", path))
	srv := smtp.NewServer(&backend{s: s, path: path})
	srv.LMTP = path == PathLMTP
	srv.Domain = s.cfg.Hostname
	srv.MaxMessageBytes = s.cfg.MaxMessageBytes
	srv.MaxRecipients = s.cfg.MaxRecipients
	// go-smtp's line limit would apply to message lines too (and it checks every byte);
	// the guard under it bounds command lines instead, and message lines need no bound:
	// a message is streamed into its budgeted buffer, never held as lines.
	srv.MaxLineLength = 0
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
		select { // go-smtp closes the listeners first
		case <-ll.closed:
		case <-gctx.Done():
		}
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

// Inflight is the number of message bytes held in memory now, across all sessions.
func (s *Server) Inflight() int64 { return s.budget.inUse() }

// slogAdapter lets go-smtp log through slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Printf(format string, v ...any) { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Println(v ...any)               { a.l.Warn(fmt.Sprint(v...)) }

type backend struct {
	s    *Server
	path string
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	ss := &session{s: b.s, path: b.path, conn: c, tc: trackedOf(c.Conn())}
	ss.progress() // the reply to HELO/EHLO
	return ss, nil
}

// session is one SMTP or LMTP conversation. It implements smtp.LMTPSession too; go-smtp
// only calls LMTPData on the LMTP listener.
type session struct {
	s    *Server
	path string
	conn *smtp.Conn
	tc   *trackedConn

	// The transaction. go-smtp runs Data for BDAT in its own goroutine, which a RSET
	// may overlap, hence the lock.
	mu        sync.Mutex
	from      string
	size      int64       // SIZE= from MAIL, 0 if none
	held      int64       // budget reserved at MAIL for the declared size
	holdTimer *time.Timer // gives held back if DATA does not follow soon
	rcpts     []string
	delivered bool // the last transaction's message was accepted
}

// sizeHold is how long room reserved at MAIL (for SIZE=) waits for DATA.
const sizeHold = 10 * time.Second

func (ss *session) setBusy(b bool) {
	if ss.tc != nil {
		ss.tc.busy.Store(b)
	}
}

// progress tells the guard that the command being answered moved mail forward.
func (ss *session) progress() {
	if ss.tc != nil {
		ss.tc.g.progress()
	}
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if strings.ContainsAny(from, "\r\n\x00") {
		return replyBadSender
	}
	ss.dropHold()
	var size int64
	if opts != nil {
		size = opts.Size
	}
	if ss.s.cfg.MaxMessageBytes <= 0 && size > 32<<20 {
		size = 0 // no cap to trust the declaration against: read as it comes
	}
	// Room for a declared size is reserved now, so a message that cannot be taken is
	// refused before it is sent. Without SIZE=, the message is let in only while there
	// is room for the largest one (read in chunks, that is twice max_message_bytes):
	// refused halfway, it would have been sent in vain.
	if size > 0 && !ss.s.budget.reserve(size, ss.s.cfg.InflightWait) {
		return replyNoStorage
	}
	if size == 0 && !ss.s.budget.room(2*ss.s.cfg.MaxMessageBytes, ss.s.cfg.InflightWait) {
		return replyNoStorage
	}
	ss.mu.Lock()
	ss.from, ss.rcpts, ss.size, ss.held = from, nil, size, size
	if size > 0 {
		ss.holdTimer = time.AfterFunc(sizeHold, ss.dropHold)
	}
	ss.mu.Unlock()
	ss.setBusy(true)
	ss.progress()
	return nil
}

// dropHold gives back room reserved at MAIL that no message took.
func (ss *session) dropHold() {
	ss.mu.Lock()
	held := ss.held
	ss.held = 0
	if ss.holdTimer != nil {
		ss.holdTimer.Stop()
		ss.holdTimer = nil
	}
	ss.mu.Unlock()
	ss.s.budget.release(held)
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !ss.s.rcpts.accepts(to) {
		ss.s.log.Info("recipient refused", "path", ss.path, "rcpt", to, "remote", ss.remote())
		return replyNoSuchUser
	}
	ss.mu.Lock()
	ss.rcpts = append(ss.rcpts, to)
	ss.mu.Unlock()
	ss.progress()
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
	ss.mu.Lock()
	rcpts := ss.rcpts
	ss.mu.Unlock()
	rep := replyForData(ss.receive(r), ss.s.log)
	for _, rcpt := range rcpts {
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
	// go-smtp hands BDAT chunks through a pipe, DATA through its dot reader.
	_, bdat := r.(*io.PipeReader)
	if ss.tc != nil {
		// The transfer gets the full deadline go-smtp set for its command, even if
		// stress shortened it; under stress each read is bounded instead.
		ss.tc.Conn.SetReadDeadline(ss.tc.g.startTransfer(!bdat))
		if bdat {
			r = &tookReader{r: r, g: ss.tc.g}
		}
	}
	ss.mu.Lock()
	env := Envelope{
		Path: ss.path, Remote: ss.remote(), Helo: ss.conn.Hostname(), MailFrom: ss.from,
		Rcpts: ss.rcpts, Live: true,
	}
	declared, reserved := ss.size, ss.held
	ss.held = 0
	if ss.holdTimer != nil {
		ss.holdTimer.Stop()
		ss.holdTimer = nil
	}
	ss.mu.Unlock()
	msg, err := readMessage(ss.s.budget, r, declared, reserved, ss.s.cfg.InflightWait)
	if err != nil {
		return err
	}
	defer msg.release()
	ss.s.inflight.Add(1)
	defer ss.s.inflight.Done()
	if ss.s.ctx.Err() != nil {
		return replyShuttingDown
	}
	env.Received = time.Now()
	rc, err := ss.s.acc.Accept(context.WithoutCancel(ss.s.ctx), env, msg.raw)
	if err != nil {
		return err
	}
	ss.mu.Lock()
	ss.delivered = true
	ss.mu.Unlock()
	ss.s.log.Debug("message accepted", "path", ss.path, "inbox", rc.ID, "duplicate", rc.Duplicate, "bytes", len(msg.raw))
	return nil
}

// tookReader tells the guard how much of a BDAT transfer the session has taken.
type tookReader struct {
	r io.Reader
	g *guard
}

func (t *tookReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.g.took(n)
	return n, err
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
	ss.mu.Lock()
	delivered := ss.delivered
	ss.from, ss.rcpts, ss.size, ss.delivered = "", nil, 0, false
	ss.mu.Unlock()
	ss.dropHold()
	ss.setBusy(false)
	if ss.tc != nil {
		ss.tc.g.endTransfer(delivered)
	}
	if ss.s.shuttingDown.Load() && ss.tc != nil {
		// Not ss.conn.Close: go-smtp holds the connection's lock while calling Reset.
		ss.tc.Close()
	}
}

func (ss *session) Logout() error {
	ss.dropHold()
	return nil
}

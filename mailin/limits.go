package mailin

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// sessionLimits are the per-listener bounds on sessions (see Config).
type sessionLimits struct {
	max, perHost  int
	junk          int
	stressAt      int // open sessions at which stress timeouts apply; 0: never
	stressTimeout time.Duration
}

// limitListener caps concurrent connections, in all and per client address. A client
// beyond the cap gets "421 4.7.0" and is disconnected: a temporary answer, so its mail
// is retried. It also keeps every open connection so shutdown can close them, and puts
// each under a guard (guard.go).
type limitListener struct {
	net.Listener
	lim      sessionLimits
	log      *slog.Logger
	stressed atomic.Bool // at least lim.stressAt sessions are open

	mu     sync.Mutex
	total  int
	byHost map[string]int
	open   map[*trackedConn]struct{}

	closeOnce sync.Once
	closed    chan struct{} // the socket is closed: no new connection is taken
}

func newLimitListener(l net.Listener, lim sessionLimits, log *slog.Logger) *limitListener {
	return &limitListener{Listener: l, lim: lim, log: log, byHost: map[string]int{},
		open: map[*trackedConn]struct{}{}, closed: make(chan struct{})}
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.closed) })
	return err
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := hostOf(c.RemoteAddr())
		if tc, ok := l.admit(c, host); ok {
			return tc, nil
		}
		go refuseBusy(c)
	}
}

func (l *limitListener) admit(c net.Conn, host string) (*trackedConn, bool) {
	l.mu.Lock()
	if l.lim.max > 0 && l.total >= l.lim.max || l.lim.perHost > 0 && host != "" && l.byHost[host] >= l.lim.perHost {
		l.mu.Unlock()
		return nil, false
	}
	l.total++
	l.byHost[host]++
	tc := &trackedConn{Conn: c, l: l, host: host, g: newGuard(l.lim.junk, l.lim.stressTimeout)}
	l.open[tc] = struct{}{}
	var tighten []*trackedConn
	if l.lim.stressAt > 0 && l.total >= l.lim.stressAt && !l.stressed.Load() {
		l.stressed.Store(true)
		for o := range l.open {
			tighten = append(tighten, o)
		}
	}
	l.mu.Unlock()
	if tighten != nil {
		l.log.Warn("most session slots are busy: stress timeouts apply", "open", len(tighten), "max", l.lim.max, "timeout", l.lim.stressTimeout)
	}
	// Sessions that made no progress for the stress timeout end now (go-smtp answers
	// 421 4.4.2), the others when they next dawdle.
	for _, o := range tighten {
		if d, ok := o.g.stressDeadline(); ok {
			o.Conn.SetReadDeadline(d)
		}
	}
	return tc, true
}

func (l *limitListener) release(tc *trackedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.open[tc]; !ok {
		return
	}
	delete(l.open, tc)
	l.total--
	if l.byHost[tc.host]--; l.byHost[tc.host] <= 0 {
		delete(l.byHost, tc.host)
	}
	if l.total < l.lim.stressAt {
		l.stressed.Store(false)
	}
}

// closeConns closes open connections; with idleOnly, only those not inside a mail
// transaction (between MAIL and the reply to DATA).
func (l *limitListener) closeConns(idleOnly bool) {
	l.mu.Lock()
	var victims []*trackedConn
	for tc := range l.open {
		if !idleOnly || !tc.busy.Load() {
			victims = append(victims, tc)
		}
	}
	l.mu.Unlock()
	for _, tc := range victims {
		tc.Close()
	}
}

func refuseBusy(c net.Conn) {
	c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	c.Write([]byte("421 4.7.0 Too many connections, try again later\r\n"))
	c.Close()
}

func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	return "" // unix socket peers share the overall cap only
}

// trackedConn is a connection counted by a limitListener and watched by its guard.
type trackedConn struct {
	net.Conn
	l    *limitListener
	host string
	g    *guard
	busy atomic.Bool // inside a mail transaction
	once sync.Once
}

func (tc *trackedConn) Read(p []byte) (int, error) {
	if err := tc.g.reading(); err != nil {
		return 0, err
	}
	if d, ok := tc.g.transferDeadline(tc.l.stressed.Load()); ok {
		tc.Conn.SetReadDeadline(d)
	}
	n, err := tc.Conn.Read(p)
	if n > 0 {
		if gerr := tc.g.received(p[:n]); gerr != nil {
			return 0, tc.refuse(gerr)
		}
	}
	return n, err
}

// refuse ends a session the guard stopped. Before STARTTLS it writes the reply itself,
// drops whatever go-smtp would still answer (a part of the line it already buffered)
// and reports EOF, so go-smtp closes quietly; behind TLS it hands go-smtp the error,
// which go-smtp answers (500 for a too long line, 421 otherwise).
func (tc *trackedConn) refuse(err error) error {
	tc.l.log.Info("session closed", "reason", err.Error(), "remote", tc.RemoteAddr().String())
	if !errors.Is(err, errLineTooLong) {
		tc.g.stop(err, false)
		return err
	}
	tc.writeReply(replyLineTooLong)
	tc.g.stop(io.EOF, true)
	return io.EOF
}

func (tc *trackedConn) Write(p []byte) (int, error) {
	switch tc.g.replying(p) {
	case replyDrop:
		return len(p), nil
	case replyOverJunk: // this reply becomes the last one
		tc.l.log.Info("session closed", "reason", errJunk.Error(), "remote", tc.RemoteAddr().String())
		tc.writeReply(replyJunk)
		return len(p), nil
	}
	return tc.Conn.Write(p)
}

func (tc *trackedConn) writeReply(r *smtp.SMTPError) {
	tc.Conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(tc.Conn, replyLine(r))
}

// SetReadDeadline is how go-smtp times commands out; the guard shortens it under stress.
func (tc *trackedConn) SetReadDeadline(t time.Time) error {
	return tc.Conn.SetReadDeadline(tc.g.readDeadline(t, tc.l.stressed.Load()))
}

func (tc *trackedConn) SetDeadline(t time.Time) error {
	if err := tc.SetReadDeadline(t); err != nil {
		return err
	}
	return tc.Conn.SetWriteDeadline(t)
}

func (tc *trackedConn) Close() error {
	tc.once.Do(func() { tc.l.release(tc) })
	return tc.Conn.Close()
}

// trackedOf finds our wrapper under a connection go-smtp hands a session (after STARTTLS
// it is a *tls.Conn around it).
func trackedOf(c net.Conn) *trackedConn {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	tc, _ := c.(*trackedConn)
	return tc
}

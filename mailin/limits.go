package mailin

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// limitListener caps concurrent connections, in all and per client address. A client
// beyond the cap gets "421 4.7.0" and is disconnected: a temporary answer, so its mail
// is retried. It also keeps every open connection so shutdown can close them.
type limitListener struct {
	net.Listener
	max, perHost int

	mu     sync.Mutex
	total  int
	byHost map[string]int
	open   map[*trackedConn]struct{}
}

func newLimitListener(l net.Listener, max, perHost int) *limitListener {
	return &limitListener{Listener: l, max: max, perHost: perHost, byHost: map[string]int{}, open: map[*trackedConn]struct{}{}}
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
	defer l.mu.Unlock()
	if l.max > 0 && l.total >= l.max || l.perHost > 0 && host != "" && l.byHost[host] >= l.perHost {
		return nil, false
	}
	l.total++
	l.byHost[host]++
	tc := &trackedConn{Conn: c, l: l, host: host}
	l.open[tc] = struct{}{}
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

// trackedConn is a connection counted by a limitListener.
type trackedConn struct {
	net.Conn
	l    *limitListener
	host string
	busy atomic.Bool // inside a mail transaction
	once sync.Once
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

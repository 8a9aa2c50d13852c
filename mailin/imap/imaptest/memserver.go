// Package imaptest starts IMAP servers for tests: go-imap's in-memory server in-process,
// a private Dovecot in a temp dir, and a proxy that hides capabilities (IDLE, MOVE) and
// records what the client sent. Tests of mailin/imap and of `replydesk serve` share it.
package imaptest

import (
	"bytes"
	"errors"
	"log"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
)

// The account every test server has.
const (
	User     = "support@example.test"
	Password = "secret"
)

// MemOptions shape an in-memory server.
type MemOptions struct {
	// XOAUTH2, when set, offers AUTHENTICATE XOAUTH2 (and refuses LOGIN): it checks a
	// bearer token and says until when it is valid. A session still open when its token
	// expires is cut, as Microsoft 365 does, and counted in ExpiredCuts.
	XOAUTH2 func(user, token string) (expiry time.Time, err error)
	// Broken, when set, names messages whose body the server cannot deliver: a UID FETCH
	// of their BODY[] answers the others and then NO, as a server with a damaged message
	// file does.
	Broken func(uid imap.UID) bool
}

// MemServer is go-imap's imapmemserver on 127.0.0.1, with one user and an INBOX.
type MemServer struct {
	Addr string
	User *imapmemserver.User

	opts        MemOptions
	mem         *imapmemserver.Server
	mu          sync.Mutex
	srv         *imapserver.Server
	expiredCuts atomic.Int64
	logins      atomic.Int64
}

// StartMem starts an in-memory server on a port of its own; it stops with the test.
func StartMem(t testing.TB, opts MemOptions) *MemServer {
	t.Helper()
	s := &MemServer{opts: opts, mem: imapmemserver.New(), User: imapmemserver.NewUser(User, Password)}
	if err := s.User.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	s.mem.AddUser(s.User)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

func (s *MemServer) serve(ln net.Listener) {
	srv := imapserver.New(&imapserver.Options{
		NewSession: s.newSession,
		Caps: imap.CapSet{
			imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapMove: {}, imap.CapNamespace: {},
			imap.CapLiteralPlus: {}, imap.CapSpecialUse: {},
		},
		InsecureAuth: true,
		Logger:       log.New(discard{}, "", 0),
	})
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(ln)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Stop closes the listener and every connection; the mailboxes stay.
func (s *MemServer) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Restart stops the server and serves the same mailboxes on the same address again,
// as a server restart does: every connection is dropped.
func (s *MemServer) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	var ln net.Listener
	var err error
	for i := 0; i < 100; i++ {
		if ln, err = net.Listen("tcp", s.Addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen again on %s: %v", s.Addr, err)
	}
	s.serve(ln)
}

// Deliver puts raw into mailbox directly, as the server's own delivery would (no login:
// in XOAUTH2 mode LOGIN is refused).
func (s *MemServer) Deliver(t testing.TB, mailbox, raw string) {
	t.Helper()
	if _, err := s.User.Append(mailbox, literal{strings.NewReader(raw), int64(len(raw))}, &imap.AppendOptions{}); err != nil {
		t.Fatalf("deliver to %s: %v", mailbox, err)
	}
}

type literal struct {
	*strings.Reader
	n int64
}

func (l literal) Size() int64 { return l.n }

// ExpiredCuts counts sessions cut because their XOAUTH2 token expired while open.
func (s *MemServer) ExpiredCuts() int64 { return s.expiredCuts.Load() }

// Logins counts successful logins.
func (s *MemServer) Logins() int64 { return s.logins.Load() }

func (s *MemServer) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	inner := s.mem.NewSession().(imapserver.SessionIMAP4rev2)
	if s.opts.XOAUTH2 == nil {
		return &countingSession{SessionIMAP4rev2: inner, s: s}, nil, nil
	}
	return &oauthSession{SessionIMAP4rev2: inner, s: s, conn: c}, nil, nil
}

type countingSession struct {
	imapserver.SessionIMAP4rev2
	s *MemServer
}

// Fetch leaves out the Broken messages' bodies, and then fails.
func (cs *countingSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	uids, ok := numSet.(imap.UIDSet)
	if cs.s.opts.Broken == nil || !ok || len(options.BodySection) == 0 {
		return cs.SessionIMAP4rev2.Fetch(w, numSet, options)
	}
	list, static := uids.Nums()
	if !static {
		return cs.SessionIMAP4rev2.Fetch(w, numSet, options)
	}
	var good imap.UIDSet
	broken := false
	for _, u := range list {
		if cs.s.opts.Broken(u) {
			broken = true
		} else {
			good.AddNum(u)
		}
	}
	if len(good) > 0 {
		if err := cs.SessionIMAP4rev2.Fetch(w, good, options); err != nil {
			return err
		}
	}
	if broken {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Some messages could not be FETCHed"}
	}
	return nil
}

// Idle sends what is pending first: imapmemserver's IDLE (beta.8) only sends updates
// that arrive after it starts, so a message appended between a client's last command
// and its IDLE went unannounced. Real servers (Dovecot) announce it.
func (cs *countingSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if err := cs.Poll(w, true); err != nil {
		return err
	}
	return cs.SessionIMAP4rev2.Idle(w, stop)
}

func (cs *countingSession) Login(user, pass string) error {
	if err := cs.SessionIMAP4rev2.Login(user, pass); err != nil {
		return err
	}
	cs.s.logins.Add(1)
	return nil
}

// oauthSession authenticates with XOAUTH2 only.
type oauthSession struct {
	imapserver.SessionIMAP4rev2
	s    *MemServer
	conn *imapserver.Conn
	cut  *time.Timer
}

func (o *oauthSession) Login(string, string) error { return imapserver.ErrAuthFailed }

// Idle: see countingSession.Idle.
func (o *oauthSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if err := o.Poll(w, true); err != nil {
		return err
	}
	return o.SessionIMAP4rev2.Idle(w, stop)
}

func (o *oauthSession) AuthenticateMechanisms() []string { return []string{"XOAUTH2"} }

func (o *oauthSession) Authenticate(mech string) (sasl.Server, error) {
	if mech != "XOAUTH2" {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "only XOAUTH2"}
	}
	return &xoauth2Server{o: o}, nil
}

func (o *oauthSession) Close() error {
	if o.cut != nil {
		o.cut.Stop()
	}
	return o.SessionIMAP4rev2.Close()
}

// xoauth2Server answers a bad token as Google does: a JSON challenge, then NO.
type xoauth2Server struct {
	o      *oauthSession
	failed bool
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if x.failed {
		return nil, true, imapserver.ErrAuthFailed
	}
	user, token, err := parseXOAUTH2(resp)
	if err != nil {
		return nil, true, err
	}
	expiry, err := x.o.s.opts.XOAUTH2(user, token)
	if err != nil {
		x.failed = true
		return []byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`), false, nil
	}
	if err := x.o.SessionIMAP4rev2.Login(user, Password); err != nil {
		return nil, true, err
	}
	x.o.s.logins.Add(1)
	x.o.cut = time.AfterFunc(time.Until(expiry), func() {
		x.o.s.expiredCuts.Add(1)
		x.o.conn.Bye("access token expired")
	})
	return nil, true, nil
}

func parseXOAUTH2(resp []byte) (user, token string, err error) {
	for _, f := range bytes.Split(resp, []byte{1}) {
		switch {
		case bytes.HasPrefix(f, []byte("user=")):
			user = string(f[5:])
		case bytes.HasPrefix(f, []byte("auth=Bearer ")):
			token = string(f[len("auth=Bearer "):])
		}
	}
	if user == "" || token == "" {
		return "", "", errors.New("malformed XOAUTH2 response")
	}
	return user, token, nil
}

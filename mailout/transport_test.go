package mailout

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// smarthost is an in-process SMTP server with STARTTLS and AUTH PLAIN.
type smarthost struct {
	mu       sync.Mutex
	users    []string // who authenticated, per message
	got      [][]byte
	sessions int
	rcptCode int // answer RCPT with this code (0: accept)
	tls      bool
}

type smarthostSession struct {
	h    *smarthost
	conn *smtp.Conn
	user string
}

func (h *smarthost) NewSession(c *smtp.Conn) (smtp.Session, error) {
	h.mu.Lock()
	h.sessions++
	h.mu.Unlock()
	return &smarthostSession{h: h, conn: c}, nil
}
func (s *smarthostSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *smarthostSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "desk" || pass != "s3cret" {
			return smtp.ErrAuthFailed
		}
		s.user = user
		return nil
	}), nil
}
func (s *smarthostSession) Mail(string, *smtp.MailOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	if _, ok := s.conn.TLSConnectionState(); s.h.tls && !ok {
		return &smtp.SMTPError{Code: 530, Message: "TLS first"}
	}
	return nil
}
func (s *smarthostSession) Rcpt(string, *smtp.RcptOptions) error {
	if s.h.rcptCode != 0 {
		return &smtp.SMTPError{Code: s.h.rcptCode, EnhancedCode: smtp.EnhancedCode{s.h.rcptCode / 100, 1, 1}, Message: "refused"}
	}
	return nil
}
func (s *smarthostSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.h.got = append(s.h.got, b)
	s.h.users = append(s.h.users, s.user)
	return err
}
func (s *smarthostSession) Reset()        {}
func (s *smarthostSession) Logout() error { return nil }

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func startSmarthost(t *testing.T, withTLS bool) (*smarthost, string, *x509.CertPool) {
	h := &smarthost{tls: withTLS}
	srv := smtp.NewServer(h)
	cert, pool := selfSigned(t)
	if withTLS {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	srv.AllowInsecureAuth = !withTLS
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return h, ln.Addr().String(), pool
}

func TestSMTPTransportStartTLSAuthAndReuse(t *testing.T) {
	t.Parallel()
	h, addr, pool := startSmarthost(t, true)
	tr := NewSMTPTransport(SMTPConfig{Addr: addr, TLS: "starttls", Username: "desk", Password: "s3cret",
		Hostname: "desk.example.test", MaxConns: 1, TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
	defer tr.Close()
	for i := range 3 {
		if err := tr.Send(context.Background(), "", []string{"alice@example.com"}, []byte("Subject: hi\r\n\r\nmail\r\n")); err != nil {
			t.Fatalf("mail %d: %v", i, err)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.got) != 3 || h.users[2] != "desk" {
		t.Fatalf("smarthost got %d mails as %v", len(h.got), h.users)
	}
	if h.sessions > 2 { // one session before STARTTLS and one after, then reused
		t.Fatalf("%d sessions for 3 mails: connections not reused", h.sessions)
	}
}

func TestSMTPTransportRefusesPlaintextWhenSTARTTLSMissing(t *testing.T) {
	t.Parallel()
	_, addr, _ := startSmarthost(t, false)
	tr := NewSMTPTransport(SMTPConfig{Addr: addr, TLS: "starttls", Hostname: "desk.example.test"})
	err := tr.Send(context.Background(), "", []string{"a@example.com"}, []byte("x"))
	if err == nil || Permanent(err) || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("err %v: want a temporary STARTTLS error (never send in the clear)", err)
	}
}

func TestSMTPTransportClassifiesReplies(t *testing.T) {
	t.Parallel()
	h, addr, _ := startSmarthost(t, false)
	tr := NewSMTPTransport(SMTPConfig{Addr: addr, TLS: "none", Username: "desk", Password: "s3cret", Hostname: "d"})
	h.rcptCode = 550
	if err := tr.Send(context.Background(), "", []string{"a@example.com"}, []byte("x")); !Permanent(err) || !strings.Contains(err.Error(), "550") {
		t.Fatalf("550: %v, want permanent", err)
	}
	h.rcptCode = 451
	if err := tr.Send(context.Background(), "", []string{"a@example.com"}, []byte("x")); err == nil || Permanent(err) {
		t.Fatalf("451: %v, want temporary", err)
	}
	dead := NewSMTPTransport(SMTPConfig{Addr: "127.0.0.1:1", TLS: "none", Hostname: "d"})
	var ne net.Error
	if err := dead.Send(context.Background(), "", []string{"a@example.com"}, []byte("x")); Permanent(err) || !errors.As(err, &ne) && !strings.Contains(err.Error(), "refused") {
		t.Fatalf("refused connection: %v, want temporary", err)
	}
}

func TestDirTransportWritesWholeFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := (DirTransport{Dir: dir}).Send(context.Background(), "", []string{"a@example.com"}, []byte("Subject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	tmp, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	if len(files) != 1 || len(tmp) != 0 {
		t.Fatalf("files %v, leftovers %v", files, tmp)
	}
	b, _ := os.ReadFile(files[0])
	if !strings.HasSuffix(string(b), "Subject: x\r\n\r\nbody\r\n") {
		t.Fatalf("file: %q", b)
	}
}

// TestDirTransportLongLocalPart (issue 8, defect 9): the file name is bounded, so a
// 200-character local part (and a 250-character domain) is delivered; the name keeps a
// readable, sanitized part of the recipient.
func TestDirTransportLongLocalPart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	long := strings.Repeat("a", 100) + "/../" + strings.Repeat("b", 96) + "@" + strings.Repeat("c", 240) + ".example"
	if err := (DirTransport{Dir: dir}).Send(context.Background(), "", []string{long}, []byte("Subject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatalf("delivery to a 200-character local part: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	name := filepath.Base(files[0])
	if len(name) > 128 || !strings.Contains(name, "aaaa") || strings.ContainsAny(name, "/@") {
		t.Fatalf("file name %q (%d bytes)", name, len(name))
	}
}

// TestDirTransportNeverOverwrites: mails to one recipient sent at once are all kept.
func TestDirTransportNeverOverwrites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tr := DirTransport{Dir: filepath.Join(dir, "outbox")} // created on first use
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- tr.Send(context.Background(), "", []string{"a@example.com"}, []byte("Subject: "+strings.Repeat("x", i)+"\r\n\r\n"))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "outbox", "*.eml")); len(files) != 64 {
		t.Fatalf("%d files for 64 mails", len(files))
	}
}

package imaptest

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// Proxy stands between a client and an IMAP server on 127.0.0.1: it hides capabilities
// (IDLE, MOVE: a server without them) and records every command line the client sends.
type Proxy struct {
	Addr   string
	target string
	hide   []string

	mu    sync.Mutex
	lines []string
}

// StartProxy proxies to target, hiding the named capabilities; it stops with the test.
func StartProxy(t testing.TB, target string, hide ...string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, hide: hide}
	var conns sync.WaitGroup
	t.Cleanup(func() { ln.Close(); conns.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() { defer conns.Done(); p.relay(c) }()
		}
	}()
	return p
}

func (p *Proxy) relay(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.fromServer(client, server)
		client.Close()
	}()
	p.fromClient(server, client)
	server.Close()
	<-done
}

// fromClient records the client's lines (literal data included, which is harmless here:
// the poller sends no literals).
func (p *Proxy) fromClient(server io.Writer, client io.Reader) {
	r := bufio.NewReader(client)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			p.mu.Lock()
			p.lines = append(p.lines, strings.TrimRight(string(line), "\r\n"))
			p.mu.Unlock()
			if _, werr := server.Write(line); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// capLine: a response that lists capabilities (untagged, or in a response code).
var capLine = regexp.MustCompile(`^(\* |[A-Za-z0-9.]+ OK \[|\* OK \[)CAPABILITY `)

func (p *Proxy) fromServer(client io.Writer, server io.Reader) {
	r := bufio.NewReaderSize(server, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if _, werr := client.Write(line); werr != nil {
				return
			}
			continue
		}
		if len(line) > 0 {
			if capLine.Match(line) {
				line = p.strip(line)
			}
			if _, werr := client.Write(line); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) strip(line []byte) []byte {
	for _, c := range p.hide {
		for _, form := range []string{" " + c + " ", " " + c + "]", " " + c + "\r"} {
			line = bytes.ReplaceAll(line, []byte(form), []byte(form[len(c)+1:]))
		}
	}
	return line
}

// Commands returns the command lines the clients sent so far.
func (p *Proxy) Commands() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Sent reports whether any client command matches re (e.g. `^\S+ (UID )?MOVE `).
func (p *Proxy) Sent(re string) []string {
	rx := regexp.MustCompile(re)
	var out []string
	for _, l := range p.Commands() {
		if rx.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

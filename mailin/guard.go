package mailin

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Bounds on what one client may make a session hold, whatever it sends.
const (
	// maxCommandLine is the longest command line taken, CRLF included. RFC 5321
	// §4.5.3.1.4 allows 512 octets; SMTPUTF8 addresses and ESMTP parameters make real
	// lines longer, so four times that (as mox does).
	maxCommandLine = 2048
	// maxUnanswered is how many bytes a client may send, outside a message, without
	// getting a reply, once STARTTLS has made the stream opaque to the guard.
	maxUnanswered = 64 << 10
)

// errJunk ends a session that keeps sending commands that move no mail (NOOP, RSET,
// VRFY, HELP, unknown or refused commands): Postfix's smtpd_junk_command_limit.
var errJunk = errors.New("too many commands that move no mail")

// guard sits between the socket and go-smtp (and under TLS after STARTTLS) and bounds a
// session by the bytes it sees, which go-smtp alone does not: its line limit applies to
// message lines too, and it has no junk or stress limits.
//
//   - Before STARTTLS it follows the command stream: a command line longer than
//     maxCommandLine ends the session (500 5.5.2), while message bodies (DATA up to
//     its terminator, BDAT chunks by their size) pass unchecked.
//   - After STARTTLS it sees only TLS records, so it bounds what a client sends
//     without getting a reply instead (maxUnanswered), outside a message.
//   - It counts replies to commands that move no mail forward; beyond the junk
//     limit the session is closed with 421. A delivered message resets the count.
//   - Under stress (the listener nearly full) a session must make progress every
//     stress timeout: NOOPs do not keep a slot, and a message in transfer must keep
//     sending.
//
// The session tells it what go-smtp does not show: progress (greeting, accepted MAIL
// and RCPT), the start of a message transfer and its end.
type guard struct {
	junkLimit     int
	stressTimeout time.Duration

	mu sync.Mutex

	// The command stream before STARTTLS.
	line      [maxCommandLine]byte // the current command line so far
	lineLen   int
	bdat      int64     // bytes of a BDAT chunk still to come
	body      bool      // inside a DATA body, until its terminator
	dot       dotState  // where in the body the terminator search is
	tlsNext   bool      // a STARTTLS command was sent: a 220 reply makes the stream opaque
	opaque    bool      // after STARTTLS: the bytes are TLS records
	heard     int       // opaque: bytes received since the last reply
	fed       int       // opaque, in BDAT: chunk bytes the session took since the last reply
	chunked   bool      // opaque: the transfer is BDAT, whose chunks come between commands
	pending   time.Time // read deadline go-smtp asked for
	shortened bool      // the transfer's deadline is shortened by stress

	transfer   bool // between the start of DATA/BDAT and the session's reset
	credit     int  // replies to come that answer commands which moved mail forward
	junk       int  // replies to commands that moved nothing
	progressed time.Time

	stopped error // once set, every read fails with it
	muted   bool  // go-smtp's replies are dropped: the guard wrote the last one
}

func newGuard(junkLimit int, stressTimeout time.Duration) *guard {
	// The greeting is a reply to no command: credit it.
	return &guard{junkLimit: junkLimit, stressTimeout: stressTimeout, credit: 1, progressed: time.Now()}
}

// dotState follows go-smtp's DATA reader (data.go) byte for byte, so the guard ends a
// body exactly where go-smtp does.
type dotState int

const (
	dotLineStart dotState = iota
	dotDot
	dotDotCR
	dotCR
	dotText
)

// reading returns the error every read fails with once the guard stopped the session.
func (g *guard) reading() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stopped
}

// stop makes every further read fail with err; with mute, go-smtp's replies are dropped
// too (the guard wrote the session's last reply itself).
func (g *guard) stop(err error, mute bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopped, g.muted = err, mute
}

// received checks bytes read from the client; a non-nil error ends the session.
func (g *guard) received(p []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.opaque {
		if g.transfer && !g.chunked {
			return nil
		}
		// Between BDAT chunks come commands: what the session took as chunk data (and
		// TLS's overhead on it) does not count as unanswered.
		if g.heard += len(p); g.heard > maxUnanswered+g.fed+g.fed/64 {
			return smtp.ErrTooLongLine
		}
		return nil
	}
	for len(p) > 0 {
		switch {
		case g.bdat > 0:
			n := min(int64(len(p)), g.bdat)
			g.bdat -= n
			p = p[n:]
		case g.body:
			p = p[g.scanBody(p):]
		default:
			seg := p
			i := bytes.IndexByte(p, '\n')
			if i >= 0 {
				seg = p[:i+1]
			}
			if g.lineLen+len(seg) > maxCommandLine {
				return errLineTooLong
			}
			g.lineLen += copy(g.line[g.lineLen:], seg)
			p = p[len(seg):]
			if i >= 0 {
				g.endLine()
			}
		}
	}
	return nil
}

var errLineTooLong = errors.New("command line too long")

// endLine looks at a complete command line for what changes how the next bytes are
// read, parsing as go-smtp does (parseCmd in parse.go, handleBdat in conn.go).
func (g *guard) endLine() {
	line := strings.TrimRight(string(g.line[:g.lineLen]), "\r\n")
	g.lineLen = 0
	if len(line) >= 8 && strings.EqualFold(line[:8], "STARTTLS") {
		g.tlsNext = true
		return
	}
	if len(line) < 6 || line[4] != ' ' || !strings.EqualFold(line[:4], "BDAT") {
		return
	}
	// go-smtp reads the chunk whenever the arguments parse, even if it refuses it.
	args := strings.Fields(line[5:])
	if len(args) == 0 || len(args) > 2 || len(args) == 2 && !strings.EqualFold(args[1], "LAST") {
		return
	}
	if size, err := strconv.ParseUint(args[0], 10, 32); err == nil {
		g.bdat = int64(size)
	}
}

// scanBody consumes body bytes up to and including the end-of-data line and returns
// how many it consumed.
func (g *guard) scanBody(p []byte) int {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch g.dot {
		case dotText:
			j := bytes.IndexByte(p[i:], '\r')
			if j < 0 {
				return len(p)
			}
			i += j
			g.dot = dotCR
		case dotLineStart:
			switch c {
			case '.':
				g.dot = dotDot
			case '\r':
				g.dot = dotCR
			default:
				g.dot = dotText
			}
		case dotDot:
			g.dot = dotText
			if c == '\r' {
				g.dot = dotDotCR
			}
		case dotDotCR:
			g.dot = dotText
			if c == '\n' {
				g.body = false
				return i + 1
			}
		case dotCR:
			g.dot = dotText
			if c == '\n' {
				g.dot = dotLineStart
			}
		}
	}
	return len(p)
}

// replyAction is what to do with a reply line go-smtp writes.
type replyAction int

const (
	replySend     replyAction = iota
	replyDrop                 // the guard already wrote the session's last reply
	replyOverJunk             // answer 421 instead: the session is over the junk limit
)

// replying notes a reply line about to be written and says what to do with it.
func (g *guard) replying(p []byte) replyAction {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.muted {
		return replyDrop
	}
	g.heard, g.fed = 0, 0
	if g.tlsNext {
		g.tlsNext = false
		g.opaque = bytes.HasPrefix(p, []byte("220"))
	}
	if g.transfer {
		return replySend
	}
	// Before STARTTLS a multi-line reply counts once, by its last line; after it every
	// line counts (an EHLO reply is then worth a few junk commands of the limit).
	if !g.opaque && !(len(p) >= 4 && p[3] == ' ') {
		return replySend
	}
	if g.credit > 0 {
		g.credit--
		return replySend
	}
	g.junk++
	if g.junkLimit <= 0 || g.junk <= g.junkLimit {
		return replySend
	}
	if g.opaque { // a reply cannot be replaced under TLS: stop at the next read
		g.stopped = errJunk
		return replySend
	}
	g.stopped, g.muted = io.EOF, true
	return replyOverJunk
}

// progress records a command that moved mail forward: its reply is not junk.
func (g *guard) progress() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.credit++
	g.progressed = time.Now()
}

// startTransfer marks the start of a message: its bytes and replies are not commands.
// A DATA body is followed to its terminator before STARTTLS; BDAT chunks are followed
// by their sizes already. It returns the read deadline go-smtp set for the command, to
// be restored for the transfer.
func (g *guard) startTransfer(data bool) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.transfer = true
	g.progressed = time.Now()
	switch {
	case data && !g.opaque:
		g.body, g.dot = true, dotLineStart
	case !data && g.opaque:
		g.chunked = true
	}
	return g.pending
}

// took records chunk bytes a BDAT transfer handed to the session.
func (g *guard) took(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fed += n
}

// endTransfer runs when the session resets. After a delivered message the junk count
// starts again (as Postfix's does).
func (g *guard) endTransfer(delivered bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.body { // the terminator was not where expected (a client that did not wait for 354)
		g.body, g.lineLen = false, 0
	}
	g.transfer, g.shortened, g.chunked = false, false, false
	if delivered {
		g.junk, g.credit = 0, 0
		g.progressed = time.Now()
	}
}

// readDeadline records the deadline go-smtp asks for and returns the one to apply:
// under stress, a session outside a transfer must make progress within stressTimeout.
func (g *guard) readDeadline(t time.Time, stressed bool) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pending = t
	if !stressed || g.transfer || g.stressTimeout <= 0 {
		return t
	}
	return earlier(t, g.progressed.Add(g.stressTimeout))
}

// transferDeadline is the deadline for the next read during a transfer, if it must be
// set: under stress the message must keep coming; after stress, the transfer gets its
// full deadline back.
func (g *guard) transferDeadline(stressed bool) (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.transfer || g.stressTimeout <= 0 {
		return time.Time{}, false
	}
	if !stressed {
		was := g.shortened
		g.shortened = false
		return g.pending, was
	}
	g.shortened = true
	return earlier(g.pending, time.Now().Add(g.stressTimeout)), true
}

// stressDeadline is the deadline a session gets when stress begins, or false during a
// transfer (which the next read bounds).
func (g *guard) stressDeadline() (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.transfer || g.stressTimeout <= 0 {
		return time.Time{}, false
	}
	return earlier(g.pending, g.progressed.Add(g.stressTimeout)), true
}

// earlier returns the earlier of two deadlines, where zero means none.
func earlier(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

package threads

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/quotedprintable"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode iso-8859-*, windows-125x, koi8-r, ... to UTF-8
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"github.com/inbucket/html2text"

	"github.com/replydesk/replydesk/quote"
	"golang.org/x/text/encoding/charmap"
)

// ParseLimits bound the work one message can cost, so that hostile mail (10,000 parts,
// deep nesting, megabyte header lines) is handled in bounded time and memory.
type ParseLimits struct {
	MaxHeaderBytes int64         // whole header block of the message
	MaxDepth       int           // multipart nesting
	MaxParts       int           // MIME parts looked at; the rest stays in the raw bytes
	MaxTextBytes   int64         // decoded text kept per message
	Budget         time.Duration // wall-clock time for one message
}

// DefaultParseLimits are generous for real mail and small for an attacker.
func DefaultParseLimits() ParseLimits {
	return ParseLimits{
		MaxHeaderBytes: 2 << 20,
		MaxDepth:       20,
		MaxParts:       1000,
		MaxTextBytes:   4 << 20,
		Budget:         5 * time.Second,
	}
}

// Parsed is what replydesk reads out of a message. Parse never fails: a message it cannot
// read is Malformed, with the reason, and carries what could be recovered.
type Parsed struct {
	MessageID   string
	InReplyTo   []string
	References  []string
	From        string // address only, lower-cased domain
	FromName    string
	To, Cc      []string
	Subject     string
	Date        time.Time // zero when missing or unreadable
	Body        string    // full decoded text (HTML converted when there is no text part)
	New         string    // what is new in it: Body without quoted history and signature
	Attachments []Attachment
	Notes       []string
	Malformed   bool
	Header      gomail.Header // for the classifiers; empty when the header was unreadable

	// Reports (bounces, read receipts): the top-level type, its report-type, the
	// Message-ID of the message the report is about, the recipients that failed, and the
	// Action of every recipient a delivery-status part names (failed, delayed, ...).
	MediaType        string
	ReportType       string
	ReportedID       string
	FailedRecipients []string
	DeliveryActions  []string
}

// Attachment is one non-body part, listed; its bytes stay in the raw message.
type Attachment struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Size int64  `json:"size"`
}

// Parse reads raw mail. It recovers from panics in the MIME code and records them as the
// reason the message is malformed.
func Parse(raw []byte, lim ParseLimits) (p *Parsed) {
	p = &Parsed{}
	defer func() {
		if r := recover(); r != nil {
			p.malformed(fmt.Sprintf("parser panic: %v", r))
			p.fallbackBody(raw, lim)
		}
	}()
	raw = skipMboxFromLine(raw)
	if fixed, ok := endHeaderAtSpaceLine(raw); ok {
		raw = fixed
		p.note("the header ended in a line of only whitespace; read the rest as the body")
	}
	// The header is read here rather than by message.ReadWithOptions so that the body
	// stays undecoded: the walker decodes each part itself (see textPart).
	lr := &headerLimit{r: bytes.NewReader(raw), n: lim.MaxHeaderBytes}
	switch { // as go-message reads MaxHeaderBytes: 0 is 1 MiB, negative no limit
	case lr.n == 0:
		lr.n = 1 << 20
	case lr.n < 0:
		lr.n = math.MaxInt64
	}
	br := bufio.NewReader(lr)
	th, err := textproto.ReadHeader(br)
	if err != nil {
		p.malformed("unreadable header: " + errText(err))
		p.fallbackHeader(raw)
		p.fallbackBody(raw, lim)
		p.New = p.Body // unreadable: all of it is shown
		return p
	}
	lr.n = math.MaxInt64
	h := message.Header{Header: th}
	p.Header = gomail.Header{Header: h}
	p.readHeader()
	w := walker{p: p, lim: lim, deadline: time.Now().Add(lim.Budget)}
	w.walk(h, br, 0)
	p.Body = w.body()
	if p.Malformed && strings.TrimSpace(p.Body) == "" {
		// Nothing decoded: show the undecoded body rather than nothing.
		p.fallbackBody(raw, lim)
	}
	p.New = w.newText()
	return p
}

// headerLimit bounds the bytes read for the header block (ParseLimits.MaxHeaderBytes).
type headerLimit struct {
	r io.Reader
	n int64
}

var errHeaderTooBig = errors.New("header larger than the limit")

func (l *headerLimit) Read(b []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeaderTooBig
	}
	if int64(len(b)) > l.n {
		b = b[:l.n]
	}
	n, err := l.r.Read(b)
	l.n -= int64(n)
	return n, err
}

// endHeaderAtSpaceLine: a header block that ends in a line holding only spaces or tabs
// (" \r\n", then the body) reads, by the letter of RFC 5322, as a folded continuation,
// and the body's first line then breaks the header. When the line after the
// whitespace-only one is neither a continuation nor a header field, the whitespace-only
// line is taken as the empty line that ends the header. It returns a copy when it
// changes anything.
func endHeaderAtSpaceLine(raw []byte) ([]byte, bool) {
	for i := 0; i < len(raw); {
		end := bytes.IndexByte(raw[i:], '\n')
		if end < 0 {
			return raw, false
		}
		end += i
		line := bytes.TrimRight(raw[i:end], "\r")
		if len(line) == 0 {
			return raw, false // the header ended normally
		}
		if len(bytes.Trim(line, " \t")) == 0 && i > 0 {
			next := raw[end+1:]
			if len(next) > 0 && next[0] != ' ' && next[0] != '\t' && next[0] != '\r' && next[0] != '\n' && !headerFieldStart(next) {
				out := make([]byte, 0, len(raw))
				out = append(out, raw[:i]...)
				out = append(out, "\r\n"...)
				return append(out, next...), true
			}
		}
		i = end + 1
	}
	return raw, false
}

// headerFieldStart: b starts with a field name and a colon.
func headerFieldStart(b []byte) bool {
	for i, c := range b {
		if c == ':' {
			return i > 0
		}
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return false
}

// note records a parse problem; error texts may quote raw message bytes, so the note is
// made valid, single-line UTF-8 first.
func (p *Parsed) note(s string) { p.Notes = append(p.Notes, OneLine(s, 500)) }

func (p *Parsed) malformed(reason string) {
	p.Malformed = true
	p.note("malformed: " + reason)
}

func errText(err error) string {
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}

// skipMboxFromLine drops a leading mbox "From " separator line (some MTA pipes add it);
// the stored raw bytes keep it.
func skipMboxFromLine(raw []byte) []byte {
	if !bytes.HasPrefix(raw, []byte("From ")) {
		return raw
	}
	if i := bytes.IndexByte(raw, '\n'); i >= 0 {
		return raw[i+1:]
	}
	return nil
}

func (p *Parsed) readHeader() {
	h := p.Header
	p.MessageID = MessageID(h.Get("Message-Id"))
	p.InReplyTo = MsgIDList(h.Get("In-Reply-To"))
	p.References = MsgIDList(h.Get("References"))
	p.From, p.FromName = p.sender(h, "From")
	if p.From == "" {
		var name string
		if p.From, name = p.sender(h, "Sender"); p.FromName == "" {
			p.FromName = name
		}
	}
	p.To = p.addresses(h, "To")
	p.Cc = p.addresses(h, "Cc")
	subject, err := h.Subject()
	if err != nil {
		p.note("subject: " + err.Error())
	}
	p.Subject = OneLine(subject, 998)
	if d, err := h.Date(); err == nil {
		p.Date = d.UTC()
	} else if h.Has("Date") {
		p.note("unreadable Date header")
	}
}

// fallbackHeader recovers what it can from a header go-message refused, field by field
// (continuation lines joined).
func (p *Parsed) fallbackHeader(raw []byte) {
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var fields []string
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1] += " " + strings.TrimSpace(line)
			continue
		}
		fields = append(fields, line)
	}
	for _, field := range fields {
		name, value, ok := strings.Cut(field, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "message-id":
			p.MessageID = MessageID(value)
		case "in-reply-to":
			p.InReplyTo = MsgIDList(value)
		case "references":
			p.References = MsgIDList(value)
		case "subject":
			p.Subject = OneLine(decodeWords(value), 998)
		case "from":
			if list := lenientAddressList(value); len(list) > 0 {
				p.From, p.FromName = p.usable("From", list[0].addr), cleanName(list[0].name)
			}
		}
	}
}

var bareAddress = regexp.MustCompile(`[^\s<>"'(),;:@]+@[^\s<>"'(),;:@]+`)

// fallbackBody shows the undecoded text after the header, so an agent can still read it.
func (p *Parsed) fallbackBody(raw []byte, lim ParseLimits) {
	body := raw
	for _, sep := range []string{"\r\n\r\n", "\n\n"} {
		if i := bytes.Index(raw, []byte(sep)); i >= 0 {
			body = raw[i+len(sep):]
			break
		}
	}
	if int64(len(body)) > lim.MaxTextBytes {
		body = body[:lim.MaxTextBytes]
		p.note("text truncated")
	}
	p.Body = cleanText(string(body))
}

func decodeWords(s string) string {
	dec := mime.WordDecoder{CharsetReader: message.CharsetReader}
	if out, err := dec.DecodeHeader(strings.TrimSpace(s)); err == nil {
		return out
	}
	return strings.TrimSpace(s)
}

// mailbox is one address of an address header: the address (angle-addr or addr-spec)
// and the display name, both as written.
type mailbox struct{ addr, name string }

// addressList reads an address header: strictly (net/mail, with RFC 2047 names) when it
// can, else leniently. Either way the address is the angle-addr when there is one:
// "victim@bank.com <attacker@evil.com>" is attacker@evil.com, whatever the name says.
func addressList(h gomail.Header, key string) []mailbox {
	list, err := h.AddressList(key)
	if err != nil {
		return lenientAddressList(h.Get(key))
	}
	out := make([]mailbox, 0, len(list))
	for _, a := range list {
		out = append(out, mailbox{a.Address, a.Name})
	}
	return out
}

// sender reads the first mailbox of From or Sender. An address that could not be
// written back into a header or compared (raw 8-bit bytes, spaces, control characters)
// is dropped with a note: the message then has no customer address rather than a
// broken one.
func (p *Parsed) sender(h gomail.Header, key string) (addr, name string) {
	list := addressList(h, key)
	if len(list) == 0 {
		return "", ""
	}
	return p.usable(key, list[0].addr), cleanName(list[0].name)
}

func (p *Parsed) usable(key, addr string) string {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return ""
	}
	if !usableAddress(addr) {
		p.note(fmt.Sprintf("%s: unusable address %q: not kept", key, ellipsis(addr, 200)))
		return ""
	}
	return normalizeAddress(addr)
}

func ellipsis(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// addresses lists the usable addresses of To or Cc.
func (p *Parsed) addresses(h gomail.Header, key string) []string {
	list := addressList(h, key)
	out := make([]string, 0, len(list))
	for _, a := range list {
		if usableAddress(a.addr) {
			out = append(out, normalizeAddress(a.addr))
		}
	}
	return out
}

// usableAddress: one address that can be compared, stored and written into a header:
// valid UTF-8, local@domain with one "@", no space, control or header syntax character.
func usableAddress(a string) bool {
	if len(a) < 3 || len(a) > 320 || !utf8.ValidString(a) || strings.Count(a, "@") != 1 {
		return false
	}
	local, domain, _ := strings.Cut(a, "@")
	if local == "" || domain == "" {
		return false
	}
	for _, r := range a {
		if r <= ' ' || r == 0x7f || unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(`<>()",;\`, r) {
			return false
		}
	}
	return true
}

// cleanName makes a display name one line of valid UTF-8; raw 8-bit bytes that are not
// UTF-8 are read as windows-1252.
func cleanName(s string) string { return OneLine(latin1IfInvalid(s), 256) }

// latin1IfInvalid reads text that is not valid UTF-8 as windows-1252 (which maps every
// byte), the charset unlabelled 8-bit text almost always is.
func latin1IfInvalid(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	if dec, err := charmap.Windows1252.NewDecoder().String(s); err == nil {
		return dec
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// lenientAddressList reads an address header net/mail refused: mailboxes separated by
// commas outside quotes, comments and angle brackets, group names dropped. In each,
// the address is the first angle-addr; without one, the first word shaped like an
// address outside quotes and comments. The name is the text before the angle-addr
// (RFC 2047 decoded, quotes removed), else the comment.
func lenientAddressList(v string) []mailbox {
	var out []mailbox
	for _, item := range splitAddresses(v) {
		if len(out) == 100 {
			break
		}
		if m, ok := lenientMailbox(item); ok {
			out = append(out, m)
		}
	}
	return out
}

// encodedWord matches an RFC 2047 word, read as one unit (it may hold ":" or "@").
var encodedWord = regexp.MustCompile(`^=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=`)

// splitAddresses cuts an address list at top-level commas and group syntax.
func splitAddresses(v string) []string {
	var items []string
	var cur strings.Builder
	depth, quoted, angle, sawAddr := 0, false, false, false
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			items = append(items, s)
		}
		cur.Reset()
		sawAddr = false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quoted:
			if c == '\\' && i+1 < len(v) {
				cur.WriteByte(c)
				i++
				c = v[i]
			} else if c == '"' {
				quoted = false
			}
		case depth > 0:
			if c == '\\' && i+1 < len(v) {
				cur.WriteByte(c)
				i++
				c = v[i]
			} else if c == '(' {
				depth++
			} else if c == ')' {
				depth--
			}
		case angle:
			if c == '>' {
				angle = false
			}
		case c == '=' && encodedWord.MatchString(v[i:]):
			w := encodedWord.FindString(v[i:])
			cur.WriteString(w)
			i += len(w) - 1
			continue
		case c == '"':
			quoted = true
		case c == '(':
			depth = 1
		case c == '<':
			angle, sawAddr = true, true
		case c == '@':
			sawAddr = true
		case c == ',' || c == ';':
			flush()
			continue
		case c == ':' && !sawAddr:
			cur.Reset() // a group name
			continue
		}
		cur.WriteByte(c)
	}
	flush()
	return items
}

// lenientMailbox reads one mailbox of splitAddresses.
func lenientMailbox(s string) (mailbox, bool) {
	var phrase, outside, comment strings.Builder
	var angleAddr string
	hasAngle := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			j := i + 1
			var q strings.Builder
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				q.WriteByte(s[j])
			}
			phrase.WriteString(q.String())
			outside.WriteByte(' ')
			i = j
		case '(':
			depth, j := 1, i+1
			var cm strings.Builder
			for ; j < len(s) && depth > 0; j++ {
				switch s[j] {
				case '\\':
					if j+1 < len(s) {
						j++
					}
				case '(':
					depth++
				case ')':
					depth--
					if depth == 0 {
						continue
					}
				}
				cm.WriteByte(s[j])
			}
			if comment.Len() == 0 {
				comment.WriteString(cm.String())
			}
			outside.WriteByte(' ')
			i = j - 1
		case '<':
			j := strings.IndexByte(s[i:], '>')
			if j < 0 {
				j = len(s) - i
			}
			if !hasAngle {
				hasAngle, angleAddr = true, s[i+1:i+j]
			}
			i += j
		default:
			if c == '=' && encodedWord.MatchString(s[i:]) {
				w := encodedWord.FindString(s[i:])
				phrase.WriteString(w)
				outside.WriteByte(' ')
				i += len(w) - 1
				continue
			}
			if !hasAngle {
				phrase.WriteByte(c)
			}
			outside.WriteByte(c)
		}
	}
	name := strings.TrimSpace(decodeWords(phrase.String()))
	if hasAngle {
		addr := strings.TrimSpace(angleAddr)
		if strings.HasPrefix(addr, "@") { // obsolete source route: <@relay:user@host>
			if _, rest, ok := strings.Cut(addr, ":"); ok {
				addr = strings.TrimSpace(rest)
			}
		}
		if name == "" {
			name = strings.TrimSpace(decodeWords(comment.String()))
		}
		return mailbox{addr: addr, name: name}, true
	}
	addr := bareAddress.FindString(outside.String())
	if addr == "" {
		return mailbox{}, false
	}
	return mailbox{addr: addr, name: strings.TrimSpace(decodeWords(comment.String()))}, true
}

// normalizeAddress lower-cases the domain; the local part is kept as written.
func normalizeAddress(a string) string {
	a = strings.Trim(strings.TrimSpace(a), "<>")
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return a[:i+1] + strings.ToLower(a[i+1:])
	}
	return a
}

// OneLine makes a one-line display or header value: valid UTF-8, no control characters
// (CR, LF and NUL become spaces), runs of space collapsed, at most max bytes.
func OneLine(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// cleanText makes stored text valid UTF-8 with LF line ends and no NULs.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\x00", "")
	return s
}

// walker reads the MIME tree under the limits, collecting text and attachments.
type walker struct {
	p        *Parsed
	lim      ParseLimits
	deadline time.Time
	parts    int
	plain    []string
	html     []string
	named    string // first text/plain part with a file name: the body when nothing else is
	textUsed int64
	stopped  bool
}

func (w *walker) stop(reason string) {
	if !w.stopped {
		w.stopped = true
		w.p.note(reason + "; the rest is kept in the raw message only")
	}
}

// walk reads one entity: its header and its body, still transfer-encoded.
func (w *walker) walk(h message.Header, body io.Reader, depth int) {
	mediaType, params := w.p.contentType(h)
	if depth == 0 {
		w.p.MediaType, w.p.ReportType = mediaType, OneLine(strings.ToLower(params["report-type"]), 100)
	}
	if !strings.HasPrefix(mediaType, "multipart/") {
		w.leaf(h, mediaType, params, body)
		return
	}
	if depth >= w.lim.MaxDepth {
		w.stop(fmt.Sprintf("multipart nesting deeper than %d", w.lim.MaxDepth))
		return
	}
	// Each alternative of a multipart/alternative is read apart, and only one is kept.
	alternative := mediaType == "multipart/alternative"
	var choices []texts
	mr := textproto.NewMultipartReader(body, params["boundary"])
	for !w.stopped {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			w.p.malformed("multipart: " + errText(err))
			break
		}
		w.parts++
		if w.parts > w.lim.MaxParts {
			w.stop(fmt.Sprintf("more than %d MIME parts", w.lim.MaxParts))
			break
		}
		if time.Now().After(w.deadline) {
			w.stop("parse time budget exceeded")
			break
		}
		mark := texts{plain: w.plain, html: w.html}
		w.walk(message.Header{Header: part.Header}, part, depth+1)
		if alternative {
			choices = append(choices, w.cut(mark))
		}
	}
	if alternative {
		w.choose(choices)
	}
}

// texts are the text parts one subtree added.
type texts struct{ plain, html []string }

// cut removes and returns what was added to the text since mark.
func (w *walker) cut(mark texts) texts {
	t := texts{plain: slices.Clone(w.plain[len(mark.plain):]), html: slices.Clone(w.html[len(mark.html):])}
	w.plain, w.html = w.plain[:len(mark.plain)], w.html[:len(mark.html)]
	return t
}

// choose keeps one alternative: the last with plain text, else the last with HTML
// (RFC 2046 §5.1.4 orders them from plainest to richest; replydesk prefers plain text).
func (w *walker) choose(choices []texts) {
	for _, wantPlain := range []bool{true, false} {
		for i := len(choices) - 1; i >= 0; i-- {
			c := choices[i]
			text := c.html
			if wantPlain {
				text = c.plain
			}
			if strings.TrimSpace(strings.Join(text, "")) != "" {
				w.plain, w.html = append(w.plain, c.plain...), append(w.html, c.html...)
				return
			}
		}
	}
}

func (w *walker) leaf(h message.Header, mediaType string, params map[string]string, body io.Reader) {
	disp, dparams := lenientHeaderParams(h.Get("Content-Disposition"))
	name := partName(params, dparams)
	isText := mediaType == "text/plain" || mediaType == "text/html"
	if isText && disp != "attachment" && name == "" {
		text, err := w.textPart(h, mediaType, params, body)
		if err != nil {
			w.p.note(fmt.Sprintf("%s part: %v", mediaType, err))
		}
		if mediaType == "text/plain" {
			w.plain = append(w.plain, text)
		} else {
			w.html = append(w.html, text)
		}
		return
	}
	var n int64
	var err error
	if mediaType == "text/plain" && disp != "attachment" && w.named == "" {
		var text string
		text, err = w.textPart(h, mediaType, params, body)
		w.named, n = text, int64(len(text))
	} else {
		// Attachments are only measured: go-message decodes the transfer encoding.
		e, nerr := message.New(h, body)
		if nerr != nil && !message.IsUnknownCharset(nerr) {
			w.p.note(fmt.Sprintf("attachment %q: %v", name, nerr))
		}
		if isReportPart(mediaType) {
			n, err = w.readReportPart(mediaType, e.Body)
		} else {
			n, err = io.Copy(io.Discard, e.Body)
		}
	}
	if err != nil {
		w.p.note(fmt.Sprintf("attachment %q: %v", name, err))
	}
	if name == "" && mediaType == "message/rfc822" {
		name = "message.eml"
	}
	w.p.Attachments = append(w.p.Attachments, Attachment{Name: name, Type: mediaType, Size: n})
}

// contentType reads an entity's Content-Type. A missing one is text/plain; so is an
// invalid one ("text", "<html>", garbage), with a note: RFC 2045 §5.2. Parameters that
// mime.ParseMediaType refuses (raw 8-bit bytes, duplicates) are read one by one.
func (p *Parsed) contentType(h message.Header) (string, map[string]string) {
	v := h.Get("Content-Type")
	if strings.TrimSpace(v) == "" {
		return "text/plain", map[string]string{}
	}
	mediaType, params := lenientHeaderParams(v)
	if !validMediaType(mediaType) {
		p.note(fmt.Sprintf("invalid Content-Type %q: read as text/plain", ellipsis(v, 100)))
		kept := map[string]string{}
		if cs := params["charset"]; cs != "" {
			kept["charset"] = cs
		}
		return "text/plain", kept
	}
	return mediaType, params
}

// validMediaType: type/subtype, both RFC 2045 tokens.
func validMediaType(mt string) bool {
	typ, sub, ok := strings.Cut(mt, "/")
	return ok && isToken(typ) && isToken(sub)
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

// lenientHeaderParams parses a Content-Type or Content-Disposition value: with
// mime.ParseMediaType when it can (RFC 2231 included), else by hand. Values are RFC 2047
// decoded, as go-message does; they may still hold raw 8-bit bytes.
func lenientHeaderParams(v string) (string, map[string]string) {
	value, params, err := mime.ParseMediaType(v)
	if err != nil {
		value, params = parseParamsByHand(v)
	}
	dec := mime.WordDecoder{CharsetReader: message.CharsetReader}
	for k, pv := range params {
		if out, err := dec.DecodeHeader(pv); err == nil {
			params[k] = out
		}
	}
	return value, params
}

// parseParamsByHand: `value; key=token-or-"quoted"; ...`, the first of a repeated key,
// RFC 2231 key*=charset'lang'%XX and key*0, key*1 continuations joined.
func parseParamsByHand(v string) (string, map[string]string) {
	head, rest, _ := strings.Cut(v, ";")
	head = strings.TrimSpace(head)
	if i := strings.IndexAny(head, " \t"); i >= 0 && strings.Contains(head[i:], "=") {
		head, rest = head[:i], head[i:]+";"+rest // a missing ";": "multipart/mixed boundary=x"
	}
	params := map[string]string{}
	parts := map[string][]string{}
	for rest != "" {
		var kv string
		rest = strings.TrimLeft(rest, " \t;")
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		key = strings.ToLower(strings.TrimSpace(key))
		after = strings.TrimLeft(after, " \t")
		if strings.HasPrefix(after, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(after) && after[i] != '"'; i++ {
				if after[i] == '\\' && i+1 < len(after) {
					i++
				}
				b.WriteByte(after[i])
			}
			kv = b.String()
			rest = after[min(i+1, len(after)):]
			if j := strings.IndexByte(rest, ';'); j >= 0 {
				rest = rest[j+1:]
			} else {
				rest = ""
			}
		} else {
			kv, rest, _ = strings.Cut(after, ";")
			kv = strings.TrimSpace(kv)
		}
		base, section, star := key, "", false
		if i := strings.IndexByte(key, '*'); i >= 0 {
			base, section, star = key[:i], key[i+1:], true
		}
		if !star {
			if _, seen := params[base]; !seen {
				params[base] = kv
			}
			continue
		}
		parts[base] = append(parts[base], section+"\x00"+kv)
	}
	for base, secs := range parts {
		if _, seen := params[base]; seen && len(secs) == 0 {
			continue
		}
		slices.SortStableFunc(secs, func(a, b string) int { return cmpSection(a, b) })
		var joined strings.Builder
		charset := ""
		for i, s := range secs {
			section, kv, _ := strings.Cut(s, "\x00")
			encoded := strings.HasSuffix(section, "*") || section == ""
			if i == 0 && encoded {
				if cs, after, ok := strings.Cut(kv, "'"); ok {
					if _, val, ok := strings.Cut(after, "'"); ok {
						charset, kv = cs, val
					}
				}
			}
			if encoded {
				if dec, err := url.PathUnescape(kv); err == nil {
					kv = dec
				}
			}
			joined.WriteString(kv)
		}
		params[base] = decodeCharset(charset, joined.String())
	}
	return strings.ToLower(strings.TrimSpace(head)), params
}

// cmpSection orders RFC 2231 sections "0", "0*", "1*", ... numerically.
func cmpSection(a, b string) int {
	num := func(s string) int {
		s, _, _ = strings.Cut(s, "\x00")
		n := 0
		for _, c := range strings.TrimSuffix(s, "*") {
			if c < '0' || c > '9' {
				return 0
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	return num(a) - num(b)
}

// decodeCharset converts s from charset to UTF-8 when the charset is known; else it
// returns s unchanged.
func decodeCharset(charset, s string) string {
	switch strings.ToLower(charset) {
	case "", "utf-8", "utf8", "us-ascii":
		return s
	}
	if message.CharsetReader == nil {
		return s
	}
	r, err := message.CharsetReader(strings.ToLower(charset), strings.NewReader(s))
	if err != nil {
		return s
	}
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return s
	}
	return string(b)
}

// partName is an attachment's name: filename= of Content-Disposition, else name= of
// Content-Type; raw 8-bit bytes that are not UTF-8 read as windows-1252; one line.
func partName(ctParams, dispParams map[string]string) string {
	for _, n := range []string{dispParams["filename"], ctParams["name"]} {
		if n = OneLine(latin1IfInvalid(n), 255); n != "" {
			return n
		}
	}
	return ""
}

// textPart decodes a text part: its transfer encoding (a part labelled base64 that is
// not base64 is kept as written, with a note), then its charset, then readText.
func (w *walker) textPart(h message.Header, mediaType string, params map[string]string, body io.Reader) (string, error) {
	cs := params["charset"]
	var r io.Reader = body
	var errs []error
	switch enc := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))); enc {
	case "", "7bit", "8bit", "binary":
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		b, err := w.base64Text(mediaType, cs, body)
		r, cs, errs = bytes.NewReader(b), "", append(errs, err) // b is UTF-8 already
	default:
		errs = append(errs, fmt.Errorf("unknown Content-Transfer-Encoding %q: text kept undecoded", ellipsis(enc, 50)))
	}
	if cs != "" {
		var err error
		r, err = charsetReader(cs, r)
		errs = append(errs, err)
	}
	text, err := w.readText(r)
	return text, errors.Join(append(errs, err)...)
}

// charsetReader converts text in charset to UTF-8 as go-message does for a part body
// (unknown charsets: the bytes unchanged, and an error).
func charsetReader(charset string, r io.Reader) (io.Reader, error) {
	var h message.Header
	f := mime.FormatMediaType("text/plain", map[string]string{"charset": charset})
	if f == "" {
		return r, fmt.Errorf("unreadable charset %q", ellipsis(charset, 50))
	}
	h.Set("Content-Type", f)
	e, err := message.New(h, r)
	return e.Body, err
}

// base64Text reads and decodes a base64 text part, converted to UTF-8. Text that is not
// base64 (characters outside the alphabet, a wrong length, or decoding into control
// characters and broken UTF-8 that no text holds) was mislabelled: it is kept as
// written, and noted.
func (w *walker) base64Text(mediaType, charset string, body io.Reader) ([]byte, error) {
	limit := max(w.lim.MaxTextBytes-w.textUsed, 0)*4/3 + 4096
	enc, err := io.ReadAll(io.LimitReader(body, limit))
	more, err2 := io.Copy(io.Discard, body)
	if err = errors.Join(err, err2); err != nil {
		return enc, err
	}
	if dec, ok, dropped := decodeBase64Text(enc, more > 0, charset); ok {
		text, cerr := convertText(charset, dec)
		if !looksBinary(text, charset) {
			if dropped > 0 {
				w.p.note(fmt.Sprintf("%s part: %d characters after the end of its base64 text were left out", mediaType, dropped))
			}
			return text, cerr
		}
	}
	w.p.note(fmt.Sprintf("%s part is labelled base64 but is not base64: kept undecoded", mediaType))
	return convertText(charset, enc)
}

func convertText(charset string, b []byte) ([]byte, error) {
	if charset == "" {
		return b, nil
	}
	r, err := charsetReader(charset, bytes.NewReader(b))
	out, rerr := io.ReadAll(r)
	if rerr != nil {
		return b, errors.Join(err, rerr)
	}
	return out, err
}

// decodeBase64Text decodes base64 leniently (any whitespace, padded chunks run together,
// missing final padding, junk after the end) and tells whether the input was base64 at
// all, and how many characters of junk after the end it left out.
func decodeBase64Text(enc []byte, truncated bool, charset string) ([]byte, bool, int) {
	clean := make([]byte, 0, len(enc))
	for _, c := range enc {
		switch c {
		case ' ', '\t', '\r', '\n', '\f', '\v':
		default:
			clean = append(clean, c)
		}
	}
	if truncated {
		clean = clean[:len(clean)/4*4]
	}
	if len(clean)%4 == 0 {
		if dec, err := base64.StdEncoding.DecodeString(string(clean)); err == nil {
			return dec, true, 0
		}
	}
	// Group by group. A padded group ends a chunk. More chunks may follow (encoded apart
	// and run together); once one has ended, what follows that is not base64 of text (a
	// footer, a broken boundary) is junk and left out, from where its chunk began.
	dec := make([]byte, 0, len(clean)/4*3+3)
	buf := make([]byte, 3)
	chunks, startDec, startPos := 0, 0, 0 // chunks ended so far; where the current one began
	junk := func() ([]byte, bool, int) {
		if chunks == 0 {
			return nil, false, 0
		}
		return dec[:startDec], true, len(clean) - startPos
	}
	i := 0
	for ; i+4 <= len(clean); i += 4 {
		n, err := base64.StdEncoding.Decode(buf, clean[i:i+4])
		if err != nil {
			return junk()
		}
		dec = append(dec, buf[:n]...)
		if n < 3 {
			if chunks > 0 && looksBinary(dec[startDec:], charset) {
				return junk()
			}
			chunks, startDec, startPos = chunks+1, len(dec), i+4
		}
	}
	tail := clean[i:]
	switch {
	case chunks == 0: // one chunk, its final group maybe without padding
		n, err := base64.RawStdEncoding.Decode(buf, tail)
		return append(dec, buf[:n]...), err == nil, 0
	case len(tail) > 0 || looksBinary(dec[startDec:], charset):
		return junk()
	}
	return dec, true, 0
}

// looksBinary: converted "text" that no text part holds: control characters other than
// tab, line ends and form feed (more than 2%), or, in a UTF-8 or ASCII part, more than 30%
// of it bytes that are not UTF-8.
func looksBinary(text []byte, charset string) bool {
	n, ctrl, invalid := 0, 0, 0
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRune(text[i:])
		i += size
		n++
		switch {
		case r == utf8.RuneError && size == 1:
			invalid++
		case r == '\t' || r == '\n' || r == '\r' || r == '\f':
		case unicode.IsControl(r):
			ctrl++
		}
	}
	if ctrl*50 > n {
		return true
	}
	switch strings.ToLower(charset) {
	case "", "utf-8", "utf8", "us-ascii":
		return invalid*10 > n*3
	}
	return false
}

func isReportPart(mediaType string) bool {
	switch mediaType {
	case "message/delivery-status", "message/global-delivery-status", "message/rfc822",
		"message/global", "text/rfc822-headers", "message/rfc822-headers", "message/global-headers":
		return true
	}
	return false
}

// readReportPart reads what a bounce says: the failed recipients of a delivery-status
// part, the Message-ID of the returned message or headers. It reads at most 64 KiB.
func (w *walker) readReportPart(mediaType string, r io.Reader) (int64, error) {
	head, err := io.ReadAll(io.LimitReader(r, 64<<10))
	rest, err2 := io.Copy(io.Discard, r)
	n := int64(len(head)) + rest
	if mediaType == "message/delivery-status" || mediaType == "message/global-delivery-status" {
		failed, actions := deliveryStatus(head)
		w.p.FailedRecipients = append(w.p.FailedRecipients, failed...)
		w.p.DeliveryActions = append(w.p.DeliveryActions, actions...)
	} else if w.p.ReportedID == "" {
		if h, herr := textprotoHeader(head); herr == nil {
			w.p.ReportedID = MessageID(h.Get("Message-Id"))
		}
	}
	return n, errors.Join(err, err2)
}

// deliveryStatus reads the per-recipient blocks of a delivery-status body (RFC 3464):
// the recipients whose Action is "failed", and every block's Action.
func deliveryStatus(status []byte) (failed, actions []string) {
	blocks := strings.Split(strings.ReplaceAll(string(status), "\r\n", "\n"), "\n\n")
	for _, b := range blocks {
		h, err := textprotoHeader([]byte(b + "\n\n"))
		if err != nil {
			continue
		}
		action, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(h.Get("Action"))), " ")
		if action == "" {
			continue // the per-message block, or not a recipient
		}
		actions = append(actions, OneLine(action, 50))
		if action != "failed" {
			continue
		}
		rcpt := h.Get("Final-Recipient")
		if rcpt == "" {
			rcpt = h.Get("Original-Recipient")
		}
		if _, addr, ok := strings.Cut(rcpt, ";"); ok {
			if addr = strings.Trim(strings.TrimSpace(addr), "<>"); usableAddress(addr) {
				failed = append(failed, normalizeAddress(addr))
			}
		}
	}
	return failed, actions
}

func textprotoHeader(b []byte) (message.Header, error) {
	e, err := message.Read(bytes.NewReader(b))
	if e == nil {
		return message.Header{}, err
	}
	return e.Header, nil
}

func (w *walker) readText(r io.Reader) (string, error) {
	left := w.lim.MaxTextBytes - w.textUsed
	if left <= 0 {
		_, err := io.Copy(io.Discard, r)
		return "", errors.Join(errors.New("text limit reached"), err)
	}
	b, err := io.ReadAll(io.LimitReader(r, left))
	w.textUsed += int64(len(b))
	if int64(len(b)) == left {
		w.p.note("text truncated")
		io.Copy(io.Discard, r)
	}
	if !utf8.Valid(b) {
		// Unlabelled or mislabelled 8-bit text: windows-1252 is what such mail
		// almost always is, and it maps every byte.
		if dec, derr := charmap.Windows1252.NewDecoder().Bytes(b); derr == nil {
			w.p.note("text was not valid in its declared charset; read as windows-1252")
			b = dec
		}
	}
	return cleanText(string(b)), err
}

// newText is what the sender wrote for this message: the body without the quoted
// history and the signature (package quote), from the HTML when the mail is HTML-only
// (its quote containers say more than the converted text does).
func (w *walker) newText() string {
	if strings.TrimSpace(strings.Join(w.plain, "\n")) == "" && len(w.html) > 0 {
		return strings.TrimSpace(quote.StripHTML(strings.Join(w.html, "\n")).New)
	}
	return strings.TrimSpace(quote.Strip(w.p.Body).New)
}

// body prefers the text/plain parts; HTML-only mail is converted to readable text.
func (w *walker) body() string {
	plain := strings.Join(w.plain, "\n")
	if strings.TrimSpace(plain) != "" {
		return plain
	}
	if len(w.html) == 0 {
		if strings.TrimSpace(w.named) != "" {
			return w.named
		}
		return plain
	}
	// A sender's deeply nested HTML would make the parser under html2text take minutes.
	text, err := html2text.FromString(quote.LimitNesting(strings.Join(w.html, "\n")))
	if err != nil {
		w.p.note("html: " + err.Error())
		return strings.Join(w.html, "\n")
	}
	return text
}

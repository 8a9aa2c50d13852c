package threads

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode iso-8859-*, windows-125x, koi8-r, ... to UTF-8
	gomail "github.com/emersion/go-message/mail"
	"github.com/inbucket/html2text"
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
	Attachments []Attachment
	Notes       []string
	Malformed   bool
	Header      gomail.Header // for the classifiers; empty when the header was unreadable

	// Reports (bounces, read receipts): the top-level type, its report-type, the
	// Message-ID of the message the report is about, and the recipients that failed.
	MediaType        string
	ReportType       string
	ReportedID       string
	FailedRecipients []string
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
	ent, err := message.ReadWithOptions(bytes.NewReader(raw), &message.ReadOptions{MaxHeaderBytes: lim.MaxHeaderBytes})
	if ent == nil {
		p.malformed("unreadable header: " + errText(err))
		p.fallbackHeader(raw)
		p.fallbackBody(raw, lim)
		return p
	}
	if err != nil {
		p.note("body: " + errText(err))
	}
	p.Header = gomail.Header{Header: ent.Header}
	p.readHeader()
	if mt, params, err := ent.Header.ContentType(); err == nil {
		p.MediaType, p.ReportType = mt, strings.ToLower(params["report-type"])
	}
	w := walker{p: p, lim: lim, deadline: time.Now().Add(lim.Budget)}
	w.walk(ent, 0)
	p.Body = w.body()
	if p.Malformed && strings.TrimSpace(p.Body) == "" {
		// Nothing decoded: show the undecoded body rather than nothing.
		p.fallbackBody(raw, lim)
	}
	return p
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
	p.From, p.FromName = firstAddress(h, "From")
	if p.From == "" {
		p.From, p.FromName = firstAddress(h, "Sender")
	}
	p.To = addresses(h, "To")
	p.Cc = addresses(h, "Cc")
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

// fallbackHeader recovers what it can from a header go-message refused, line by line.
func (p *Parsed) fallbackHeader(raw []byte) {
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
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
			if a, err := mail.ParseAddress(strings.TrimSpace(value)); err == nil {
				p.From, p.FromName = normalizeAddress(a.Address), a.Name
			} else if m := bareAddress.FindString(value); m != "" {
				p.From = normalizeAddress(m)
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

func firstAddress(h gomail.Header, key string) (addr, name string) {
	list, err := h.AddressList(key)
	if err == nil && len(list) > 0 {
		return normalizeAddress(list[0].Address), list[0].Name
	}
	raw := h.Get(key)
	if m := bareAddress.FindString(raw); m != "" {
		return normalizeAddress(m), ""
	}
	return "", ""
}

func addresses(h gomail.Header, key string) []string {
	list, err := h.AddressList(key)
	if err != nil {
		list = nil
		for _, m := range bareAddress.FindAllString(h.Get(key), 100) {
			list = append(list, &gomail.Address{Address: m})
		}
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		if a.Address != "" {
			out = append(out, normalizeAddress(a.Address))
		}
	}
	return out
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

func (w *walker) walk(e *message.Entity, depth int) {
	if mr := e.MultipartReader(); mr != nil {
		if depth >= w.lim.MaxDepth {
			w.stop(fmt.Sprintf("multipart nesting deeper than %d", w.lim.MaxDepth))
			return
		}
		for !w.stopped {
			part, err := mr.NextPart()
			if err == io.EOF {
				return
			}
			if part == nil {
				w.p.malformed("multipart: " + errText(err))
				return
			}
			if err != nil {
				w.p.note("part: " + err.Error())
			}
			w.parts++
			if w.parts > w.lim.MaxParts {
				w.stop(fmt.Sprintf("more than %d MIME parts", w.lim.MaxParts))
				return
			}
			if time.Now().After(w.deadline) {
				w.stop("parse time budget exceeded")
				return
			}
			w.walk(part, depth+1)
		}
		return
	}
	w.leaf(e)
}

func (w *walker) leaf(e *message.Entity) {
	mediaType, params, _ := e.Header.ContentType()
	if mediaType == "" {
		mediaType = "text/plain"
	}
	disp, _, _ := e.Header.ContentDisposition()
	name := partName(e.Header, params)
	isText := mediaType == "text/plain" || mediaType == "text/html"
	if isText && disp != "attachment" && name == "" {
		text, err := w.readText(e.Body)
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
	if isReportPart(mediaType) {
		n, err = w.readReportPart(mediaType, e.Body)
	} else if mediaType == "text/plain" && disp != "attachment" && w.named == "" {
		var text string
		text, err = w.readText(e.Body)
		w.named, n = text, int64(len(text))
	} else {
		n, err = io.Copy(io.Discard, e.Body)
	}
	if err != nil {
		w.p.note(fmt.Sprintf("attachment %q: %v", name, err))
	}
	if name == "" && mediaType == "message/rfc822" {
		name = "message.eml"
	}
	w.p.Attachments = append(w.p.Attachments, Attachment{Name: name, Type: mediaType, Size: n})
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
		w.p.FailedRecipients = append(w.p.FailedRecipients, failedRecipients(head)...)
	} else if w.p.ReportedID == "" {
		if h, herr := textprotoHeader(head); herr == nil {
			w.p.ReportedID = MessageID(h.Get("Message-Id"))
		}
	}
	return n, errors.Join(err, err2)
}

// failedRecipients reads the per-recipient blocks of a delivery-status body (RFC 3464)
// and returns the recipients whose Action is "failed".
func failedRecipients(status []byte) []string {
	var out []string
	blocks := strings.Split(strings.ReplaceAll(string(status), "\r\n", "\n"), "\n\n")
	for _, b := range blocks {
		h, err := textprotoHeader([]byte(b + "\n\n"))
		if err != nil {
			continue
		}
		if !strings.EqualFold(strings.TrimSpace(h.Get("Action")), "failed") {
			continue
		}
		rcpt := h.Get("Final-Recipient")
		if rcpt == "" {
			rcpt = h.Get("Original-Recipient")
		}
		if _, addr, ok := strings.Cut(rcpt, ";"); ok {
			out = append(out, normalizeAddress(strings.TrimSpace(addr)))
		}
	}
	return out
}

func textprotoHeader(b []byte) (message.Header, error) {
	e, err := message.Read(bytes.NewReader(b))
	if e == nil {
		return message.Header{}, err
	}
	return e.Header, nil
}

func partName(h message.Header, ctParams map[string]string) string {
	if name, err := (&gomail.AttachmentHeader{Header: h}).Filename(); err == nil && name != "" {
		return OneLine(name, 255)
	}
	if name := ctParams["name"]; name != "" {
		return OneLine(decodeWords(name), 255)
	}
	return ""
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
	text, err := html2text.FromString(strings.Join(w.html, "\n"))
	if err != nil {
		w.p.note("html: " + err.Error())
		return strings.Join(w.html, "\n")
	}
	return text
}

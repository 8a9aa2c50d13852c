package threads

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// AttachmentPart is one attachment of a received message, as EachAttachment reads it
// from the raw bytes.
type AttachmentPart struct {
	// Name is the part's file name read as the parser reads it (filename= of
	// Content-Disposition, else name= of Content-Type; RFC 2047/2231 decoded, raw 8-bit
	// read as windows-1252, one line) but not cut at 255 bytes, so that whoever shortens
	// it can keep its extension; "" when it has none. It is still the sender's text:
	// make it safe before writing it anywhere.
	Name string
	Type string // media type, lower case and valid (an invalid one reads as text/plain)
	// Charset is "utf-8" when Body is text converted to UTF-8 from the charset the part
	// named; "" when Body holds the bytes as sent (not text, no charset, or one we do
	// not know).
	Charset string
	// Body yields the decoded bytes (transfer encoding undone) and is valid only during
	// the call; a read error means the part's encoding is broken.
	Body io.Reader
}

// EachAttachment calls fn, in order, for every attachment of the message raw: every
// leaf part that has a file name or Content-Disposition: attachment (so the text and
// HTML of the body are not attachments, and an inline image with a file name is). It
// looks at the same parts the parser does (DefaultParseLimits' depth and part count),
// so it finds no attachment the parser did not list. An error from fn stops the walk
// and is returned; a message it cannot read returns an error too.
func EachAttachment(raw []byte, fn func(AttachmentPart) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("attachments: MIME panic: %v", r)
		}
	}()
	raw = skipMboxFromLine(raw)
	if fixed, ok := endHeaderAtSpaceLine(raw); ok {
		raw = fixed
	}
	br := bufio.NewReader(bytes.NewReader(raw))
	th, err := textproto.ReadHeader(br)
	if err != nil {
		return fmt.Errorf("attachments: unreadable header: %w", err)
	}
	lim := DefaultParseLimits()
	w := attachmentWalker{fn: fn, maxDepth: lim.MaxDepth, maxParts: lim.MaxParts}
	return w.walk(message.Header{Header: th}, br, 0)
}

type attachmentWalker struct {
	fn                 func(AttachmentPart) error
	maxDepth, maxParts int
	parts              int
	stopped            bool
}

func (w *attachmentWalker) walk(h message.Header, body io.Reader, depth int) error {
	var scratch Parsed // contentType notes what it had to guess; nobody reads them here
	mediaType, params := scratch.contentType(h)
	if !strings.HasPrefix(mediaType, "multipart/") {
		return w.leaf(h, mediaType, params, body)
	}
	if depth >= w.maxDepth {
		return nil
	}
	mr := textproto.NewMultipartReader(body, params["boundary"])
	for !w.stopped {
		part, err := mr.NextPart()
		if err != nil {
			return nil // the end, or a broken multipart: the parser stops there too
		}
		if w.parts++; w.parts > w.maxParts {
			w.stopped = true
			return nil
		}
		if err := w.walk(message.Header{Header: part.Header}, part, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (w *attachmentWalker) leaf(h message.Header, mediaType string, params map[string]string, body io.Reader) error {
	disp, dparams := lenientHeaderParams(h.Get("Content-Disposition"))
	name := fullPartName(params, dparams)
	if name == "" && disp != "attachment" {
		return nil // body text, or a part without a name that is not meant as a file
	}
	if name == "" && mediaType == "message/rfc822" {
		name = "message.eml" // as the parser lists it
	}
	// A clean header for go-message to decode with: the transfer encoding as sent, and
	// the charset only for text (which it converts to UTF-8).
	var dh message.Header
	dh.Set("Content-Transfer-Encoding", h.Get("Content-Transfer-Encoding"))
	cs := strings.ToLower(strings.TrimSpace(params["charset"]))
	text := strings.HasPrefix(mediaType, "text/") && cs != ""
	if text {
		dh.SetContentType(mediaType, map[string]string{"charset": cs})
	} else {
		dh.SetContentType("application/octet-stream", nil)
	}
	// An unknown transfer encoding or charset leaves the bytes as sent (err says which);
	// they go along as they are, without a charset we could name.
	e, err := message.New(dh, body)
	part := AttachmentPart{Name: name, Type: mediaType, Body: e.Body}
	if text && err == nil {
		part.Charset = "utf-8"
	}
	return w.fn(part)
}

// fullPartName is partName without its cap (but at most maxFullName bytes).
func fullPartName(ctParams, dispParams map[string]string) string {
	for _, n := range []string{dispParams["filename"], ctParams["name"]} {
		if n = OneLine(latin1IfInvalid(n), maxFullName); n != "" {
			return n
		}
	}
	return ""
}

const maxFullName = 4096

package mailout

import (
	"io"
	"math"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/replydesk/replydesk/templates"
	"github.com/replydesk/replydesk/threads"
)

// DefaultNotificationAttachmentCap is how many decoded bytes of a customer's attachments
// one notification carries (ResponderConfig.NotificationAttachmentCap); the rest are
// listed with their sizes.
const DefaultNotificationAttachmentCap = 10 << 20

// maxFilenameRunes caps an attachment's name in the mail we write (the extension kept).
const maxFilenameRunes = 150

// listedFile is one attachment of the message a mail is about, as a notification lists it.
type listedFile struct {
	name       string
	size       int64 // decoded bytes
	attached   bool
	unreadable bool // its transfer encoding is broken: not attached
}

// readAttachments takes the attachments of the received message raw, in order, until
// their decoded bytes would pass limit: that one and every later one are only listed
// (with their sizes). Every attachment is listed. An error means raw could not be read
// at all (files and list hold what was read before).
func readAttachments(raw []byte, limit int64) (files []Attachment, list []listedFile, err error) {
	remaining, full := max(limit, 0), false
	err = threads.EachAttachment(raw, func(p threads.AttachmentPart) error {
		l := listedFile{name: safeFilename(p.Name)}
		if full {
			n, err := io.Copy(io.Discard, p.Body)
			l.size, l.unreadable = n, err != nil
			list = append(list, l)
			return nil
		}
		body, err := io.ReadAll(io.LimitReader(p.Body, min(remaining, math.MaxInt64-1)+1))
		l.size = int64(len(body))
		switch {
		case err != nil:
			l.unreadable = true
		case l.size > remaining:
			full = true
			rest, err := io.Copy(io.Discard, p.Body)
			l.size, l.unreadable = l.size+rest, err != nil
		default:
			l.attached, remaining = true, remaining-l.size
			files = append(files, Attachment{Name: l.name, Type: p.Type, Charset: p.Charset, Body: body})
		}
		list = append(list, l)
		return nil
	})
	return files, list, err
}

// attachmentLines is the list for the notification's template, sizes in lang.
func attachmentLines(list []listedFile, lang string) []templates.AttachmentLine {
	var out []templates.AttachmentLine
	for _, l := range list {
		out = append(out, templates.AttachmentLine{Name: Display(l.name, maxFilenameRunes), Size: templates.Size(lang, l.size),
			Attached: l.attached, Unreadable: l.unreadable})
	}
	return out
}

// safeFilename makes a sender's file name fit to write as ours: one line of valid UTF-8
// (threads.OneLine), no path (a / or \ becomes _), no invisible format characters (a
// right-to-left override makes "invoice\u202efdp.exe" show as "invoiceexe.pdf"), no
// leading or trailing dots and spaces, at most maxFilenameRunes runes with its extension
// kept; "attachment" when nothing is left.
func safeFilename(name string) string {
	name = threads.OneLine(name, len(name))
	name = strings.Map(func(r rune) rune {
		switch {
		case r == '/' || r == '\\':
			return '_'
		case unicode.Is(unicode.Cf, r):
			return -1
		}
		return r
	}, name)
	name = strings.Trim(threads.OneLine(name, len(name)), " .")
	if name == "" {
		return "attachment"
	}
	if utf8.RuneCountInString(name) <= maxFilenameRunes {
		return name
	}
	ext := path.Ext(name)
	if n := utf8.RuneCountInString(ext); n > 16 || n == utf8.RuneCountInString(name) {
		ext = ""
	}
	keep := []rune(strings.TrimSuffix(name, ext))[:maxFilenameRunes-1-utf8.RuneCountInString(ext)]
	return strings.TrimRight(string(keep), " .") + "…" + ext
}

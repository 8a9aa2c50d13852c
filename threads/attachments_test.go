package threads

import (
	"io"
	"strings"
	"testing"
)

// EachAttachment finds the parts with a file name or Content-Disposition: attachment,
// in order, at any depth, and nothing the parser did not list: not the body's text and
// HTML alternatives, not an unnamed inline image.
func TestEachAttachment(t *testing.T) {
	t.Parallel()
	raw := "From: a@example.com\r\nSubject: files\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n" +
		"--m\r\nContent-Type: multipart/related; boundary=r\r\n\r\n" +
		"--r\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n" +
		"--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello\r\n" +
		"--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hello <img src=cid:x> <img src=cid:y></p>\r\n--a--\r\n" +
		"--r\r\nContent-Type: image/png\r\nContent-ID: <x>\r\nContent-Transfer-Encoding: base64\r\n\r\naWdub3JlZA==\r\n" +
		"--r\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename=\"logo.png\"\r\nContent-ID: <y>\r\nContent-Transfer-Encoding: base64\r\n\r\nbG9nbw==\r\n--r--\r\n" +
		"--m\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Disposition: attachment\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nN=FAmero\r\n" +
		"--m\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\nSubject: forwarded\r\n\r\nold mail\r\n" +
		"--m\r\nContent-Type: application/pdf; name=\"=?utf-8?q?r=C3=A9sum=C3=A9.pdf?=\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--m--\r\n"
	type got struct{ name, typ, charset, body string }
	var parts []got
	err := EachAttachment([]byte(raw), func(p AttachmentPart) error {
		b, err := io.ReadAll(p.Body)
		if err != nil {
			t.Errorf("%s: %v", p.Name, err)
		}
		parts = append(parts, got{p.Name, p.Type, p.Charset, strings.TrimRight(string(b), "\r\n")})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []got{
		{"logo.png", "image/png", "", "logo"},
		{"", "text/plain", "utf-8", "Número"},
		{"message.eml", "message/rfc822", "", "Subject: forwarded\r\n\r\nold mail"},
		{"résumé.pdf", "application/pdf", "", "%PDF-"},
	}
	if len(parts) != len(want) {
		t.Fatalf("found %+v, want %+v", parts, want)
	}
	for i := range want {
		if parts[i] != want[i] {
			t.Errorf("attachment %d: %+v, want %+v", i, parts[i], want[i])
		}
	}
	listed := Parse([]byte(raw), DefaultParseLimits()).Attachments
	if len(listed) < len(want) {
		t.Errorf("the parser lists %d attachments, fewer than EachAttachment finds: %+v", len(listed), listed)
	}
}

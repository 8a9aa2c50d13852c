package mailout

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"

	"github.com/replydesk/replydesk/mailin"
	"github.com/replydesk/replydesk/templates"
	"github.com/replydesk/replydesk/threads"
)

// testFile is one attachment of a message a test sends: its part header lines and its
// bytes (sent base64).
type testFile struct {
	header string // "Content-Type: ...\r\nContent-Disposition: ...\r\n"
	body   []byte
}

func file(ctype, name string, body []byte) testFile {
	return testFile{header: fmt.Sprintf("Content-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\n", ctype, name, name), body: body}
}

// withFiles makes a plain message (as agentReply or a test writes it) what a mail client
// sends with files: multipart/mixed, the text (and, with html, an HTML alternative of
// it) first, then the files.
func withFiles(raw, html string, files ...testFile) string {
	head, body, _ := strings.Cut(raw, "\r\n\r\n")
	var b strings.Builder
	b.WriteString(head + "\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"mixed-b\"\r\n\r\nThis is a multi-part message in MIME format.\r\n")
	text := "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body + "\r\n"
	if html == "" {
		b.WriteString("--mixed-b\r\n" + text)
	} else {
		b.WriteString("--mixed-b\r\nContent-Type: multipart/alternative; boundary=\"alt-b\"\r\n\r\n--alt-b\r\n" + text +
			"--alt-b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n--alt-b--\r\n")
	}
	for _, f := range files {
		b.WriteString("--mixed-b\r\n" + f.header + "Content-Transfer-Encoding: base64\r\n\r\n")
		enc := base64.StdEncoding.EncodeToString(f.body)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
	}
	b.WriteString("--mixed-b--\r\n")
	return b.String()
}

// gotFile is one attachment of a composed mail, as go-message reads it.
type gotFile struct {
	name, ctype string
	params      map[string]string
	body        []byte
}

// filesOf reads a composed mail with go-message: its top-level media type, the media
// type of its first part, and its attachments in order.
func filesOf(t *testing.T, raw []byte) (top, first string, files []gotFile) {
	t.Helper()
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	top, _, _ = e.Header.ContentType()
	if mpr := e.MultipartReader(); mpr != nil {
		if p, err := mpr.NextPart(); err == nil {
			first, _, _ = p.Header.ContentType()
		}
	}
	mr, err := gomail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		h, ok := p.Header.(*gomail.AttachmentHeader)
		if !ok {
			continue
		}
		name, err := h.Filename()
		if err != nil {
			t.Fatalf("attachment name: %v", err)
		}
		ct, params, _ := h.ContentType()
		b, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatal(err)
		}
		if enc := h.Get("Content-Transfer-Encoding"); enc != "base64" {
			t.Errorf("%s: Content-Transfer-Encoding %q", name, enc)
		}
		files = append(files, gotFile{name: name, ctype: ct, params: params, body: b})
	}
	return top, first, files
}

// binaryBytes is n bytes of every value, like a PDF or an image.
func binaryBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	copy(b, "%PDF-1.7\n")
	return b
}

// An agent replies with a PDF and an inline image: the customer's mail is
// multipart/mixed, the text and HTML alternatives first (still only the agent's new
// text), then both files with their bytes, names and types.
func TestAgentAttachmentsReachTheCustomer(t *testing.T) {
	t.Parallel()
	d := newAgentDesk(t)
	n := d.customerWrites()
	pdf, png := binaryBytes(300<<10, 1), binaryBytes(20<<10, 2)
	logo := testFile{header: "Content-Type: image/png; name=\"logo.png\"\r\nContent-Disposition: inline; filename=\"logo.png\"\r\nContent-ID: <logo@mail.example.test>\r\n", body: png}
	raw := withFiles(agentReply(t, "Ana <ana@example.test>", n, "Hi Alice,\r\n\r\nthe signed contract is attached."),
		"<p>Hi Alice,</p><p>the signed contract is attached.</p><img src=\"cid:logo@mail.example.test\">",
		file("application/pdf", "contract 2026.pdf", pdf), logo)
	got := d.deliver("ana@example.test", raw)
	out, ok := got["agent_reply:alice@example.com"]
	if !ok {
		t.Fatalf("nothing relayed to the customer: %v", keys(got))
	}
	top, first, files := filesOf(t, out.Raw)
	if top != "multipart/mixed" || first != "multipart/alternative" {
		t.Errorf("the customer's mail is %s, its first part %s; want multipart/mixed, multipart/alternative first", top, first)
	}
	if len(files) != 2 {
		t.Fatalf("%d attachments, want the PDF and the image", len(files))
	}
	for i, want := range []struct {
		name, ctype string
		body        []byte
	}{{"contract 2026.pdf", "application/pdf", pdf}, {"logo.png", "image/png", png}} {
		if f := files[i]; f.name != want.name || f.ctype != want.ctype || !bytes.Equal(f.body, want.body) {
			t.Errorf("attachment %d: %q %s, %d bytes (same: %v); want %q %s, %d bytes", i, f.name, f.ctype, len(f.body), bytes.Equal(f.body, want.body), want.name, want.ctype, len(want.body))
		}
	}
	_, text, html := parts(t, out.Raw)
	if !strings.Contains(text, "signed contract is attached") || strings.Contains(text, "wrote on ticket") || strings.Contains(text, "Ana Agent, Acme") ||
		!strings.Contains(html, "signed contract is attached") {
		t.Errorf("the customer gets more or less than the agent's new text:\n%s", text)
	}
	if strings.Contains(text, "JVBERi0") || strings.Contains(html, "JVBERi0") { // "%PDF-" in base64
		t.Errorf("the PDF leaked into the text")
	}
}

// A customer writes with four files under a 1 MiB cap: the ones that fit go along with
// the agents' notification (a Latin-1 text file converted to UTF-8), the first one past
// the cap and every later one do not, and the notification lists all four with their
// sizes, in text and HTML. The customer's confirmation carries none.
func TestCustomerAttachmentsReachTheAgents(t *testing.T) {
	t.Parallel()
	d := newAgentDesk(t)
	d.r.cfg.NotificationAttachmentCap = 1 << 20
	latin1 := []byte("N\xfamero de pedido: 4411\r\nDirecci\xf3n: Rua das Flores\r\n")
	invoice, shot, late := binaryBytes(120<<10, 3), binaryBytes(1536<<10, 4), binaryBytes(2<<10, 5)
	notes := testFile{header: "Content-Type: text/plain; charset=iso-8859-1; name=\"notes.txt\"\r\nContent-Disposition: attachment; filename=\"notes.txt\"\r\n", body: latin1}
	raw := withFiles("From: Alice <alice@example.com>\r\nTo: support@example.test\r\nSubject: Invoice 4411 charged twice\r\nMessage-ID: <alice-files@example.com>\r\n\r\n"+
		"Invoice 4411 was charged twice, the invoice and a screenshot of my bank are attached.\r\n", "",
		notes, file("application/pdf", "invoice.pdf", invoice), file("image/png", "screenshot.png", shot), file("application/pdf", "late.pdf", late))
	got := d.deliver("alice@example.com", raw)
	nt, ok := got["notification:ana@example.test"]
	if !ok {
		t.Fatalf("no notification: %v", keys(got))
	}
	top, _, files := filesOf(t, nt.Raw)
	if top != "multipart/mixed" || len(files) != 2 {
		t.Fatalf("notification: %s with %d attachments, want multipart/mixed with notes.txt and invoice.pdf", top, len(files))
	}
	wantNotes := "Número de pedido: 4411\r\nDirección: Rua das Flores\r\n"
	if f := files[0]; f.name != "notes.txt" || f.ctype != "text/plain" || f.params["charset"] != "utf-8" || string(f.body) != wantNotes {
		t.Errorf("notes.txt arrived as %q %s %v: %q", f.name, f.ctype, f.params, f.body)
	}
	if f := files[1]; f.name != "invoice.pdf" || f.ctype != "application/pdf" || !bytes.Equal(f.body, invoice) {
		t.Errorf("invoice.pdf arrived as %q %s, %d bytes", f.name, f.ctype, len(f.body))
	}
	want := fmt.Sprintf("Attachments: notes.txt (%s), invoice.pdf (120 KB), screenshot.png (1.5 MB, not attached: over the 1 MB limit), late.pdf (2 KB, not attached: over the 1 MB limit)",
		templates.Size("en", int64(len(wantNotes))))
	_, text, html := parts(t, nt.Raw)
	if !strings.Contains(text, want) || !strings.Contains(html, want) {
		t.Errorf("the notification does not list the files as\n%s\ntext:\n%s\nhtml:\n%s", want, text, html)
	}
	if !strings.Contains(text, "charged twice") {
		t.Errorf("the customer's text is missing:\n%s", text)
	}
	if c, ok := got["confirmation:alice@example.com"]; !ok {
		t.Errorf("no confirmation: %v", keys(got))
	} else if top, _, files := filesOf(t, c.Raw); top != "multipart/alternative" || len(files) != 0 {
		t.Errorf("the confirmation is %s with %d attachments", top, len(files))
	}
}

// A file name is the sender's text: CR/LF (RFC 2231 encoded), raw 8-bit bytes, 500
// characters, a path and a right-to-left override all become one safe line, in the
// attachment's header and in the notification's list.
func TestHostileAttachmentNames(t *testing.T) {
	t.Parallel()
	d := newAgentDesk(t)
	long := strings.Repeat("x", 500)
	hostile := []testFile{
		{header: "Content-Type: application/pdf\r\nContent-Disposition: attachment;\r\n filename*=utf-8''%0D%0ABcc%3A%20victim%40evil.example%0D%0A%0D%0Ainjected%20body%20" + long + ".pdf\r\n", body: []byte("%PDF-1 a")},
		{header: "Content-Type: application/pdf; name=\"r\xe9sum\xe9.pdf\"\r\nContent-Disposition: attachment; filename=\"r\xe9sum\xe9.pdf\"\r\n", body: []byte("%PDF-1 b")},
		{header: "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"../../etc/passwd\"\r\n", body: []byte("root:x:0:0")},
		{header: "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"=?utf-8?q?invoice=E2=80=AEfdp.exe?=\"\r\n", body: []byte("MZ")},
		{header: "Content-Type: application/pdf\r\nContent-Disposition: attachment\r\n", body: []byte("%PDF-1 c")},
	}
	check := func(what string, names []string) {
		t.Helper()
		if len(names) != len(hostile) {
			t.Fatalf("%s: %d names, want %d: %q", what, len(names), len(hostile), names)
		}
		for _, name := range names {
			if strings.ContainsAny(name, "\r\n\x00/\\\u202e") || !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxFilenameRunes || name == "" {
				t.Errorf("%s: unsafe name %q", what, name)
			}
		}
		if first := names[0]; !strings.HasPrefix(first, "Bcc: victim@evil.example injected body xxx") || !strings.HasSuffix(first, "….pdf") {
			t.Errorf("%s: the long name is %q; want it on one line, cut, with its extension", what, first)
		}
		for i, want := range []string{"", "résumé.pdf", "_.._etc_passwd", "invoicefdp.exe", "attachment"} {
			if i > 0 && names[i] != want {
				t.Errorf("%s: name %d is %q, want %q", what, i, names[i], want)
			}
		}
	}

	// To the agents: the notification's files and its list.
	got := d.deliver("alice@example.com", withFiles("From: Alice <alice@example.com>\r\nTo: support@example.test\r\nSubject: My files\r\nMessage-ID: <alice-hostile@example.com>\r\n\r\n"+
		"Here are the files you asked for.\r\n", "", hostile...))
	nt, ok := got["notification:ana@example.test"]
	if !ok {
		t.Fatalf("no notification: %v", keys(got))
	}
	hdr, text, _ := parts(t, nt.Raw)
	if hdr.Get("Bcc") != "" || bytes.Contains(nt.Raw, []byte("\r\nBcc:")) || bytes.Contains(nt.Raw, []byte("\ninjected")) {
		t.Errorf("a file name wrote a header or a line of its own:\n%s", nt.Raw)
	}
	_, _, files := filesOf(t, nt.Raw)
	var names []string
	for _, f := range files {
		names = append(names, f.name)
	}
	check("notification", names)
	var listLine string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "Attachments: ") {
			listLine = l
		}
		if strings.HasPrefix(l, "injected") || strings.HasPrefix(l, "Bcc:") {
			t.Errorf("a file name broke the notification's text: %q", l)
		}
	}
	if !strings.Contains(listLine, "résumé.pdf (8 bytes)") || !strings.Contains(listLine, "_.._etc_passwd (10 bytes)") {
		t.Errorf("the list line: %q", listLine)
	}

	// To the customer: the relayed reply's files.
	reply := withFiles(agentReply(t, "ana@example.test", nt, "Your files, back."), "", hostile...)
	got = d.deliver("ana@example.test", reply)
	out, ok := got["agent_reply:alice@example.com"]
	if !ok {
		t.Fatalf("nothing relayed: %v", keys(got))
	}
	if bytes.Contains(out.Raw, []byte("\r\nBcc:")) || bytes.Contains(out.Raw, []byte("\ninjected")) {
		t.Errorf("a file name wrote a header or a line of its own:\n%s", out.Raw)
	}
	_, _, files = filesOf(t, out.Raw)
	names = nil
	for _, f := range files {
		names = append(names, f.name)
	}
	check("agent reply", names)
}

// An agent's reply without files, plain or with an HTML alternative, stays
// multipart/alternative: no empty multipart/mixed, and the HTML is no attachment.
func TestAgentReplyWithoutAttachmentsStaysAlternative(t *testing.T) {
	t.Parallel()
	d := newAgentDesk(t)
	n := d.customerWrites()
	plain := agentReply(t, "ana@example.test", n, "No files today.")
	head, body, _ := strings.Cut(agentReply(t, "ana@example.test", n, "No files today, in HTML."), "\r\n\r\n")
	alternative := head + "\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		body + "\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>No files today, in HTML.</p>\r\n--alt--\r\n"
	for name, raw := range map[string]string{"plain": plain, "alternative": strings.Replace(alternative, "Message-ID: <ana-", "Message-ID: <ana-html-", 1)} {
		got := d.deliver("ana@example.test", raw)
		out, ok := got["agent_reply:alice@example.com"]
		if !ok {
			t.Fatalf("%s: nothing relayed: %v", name, keys(got))
		}
		if top, _, files := filesOf(t, out.Raw); top != "multipart/alternative" || len(files) != 0 {
			t.Errorf("%s: the customer's mail is %s with %d attachments; want multipart/alternative", name, top, len(files))
		}
		if _, text, _ := parts(t, out.Raw); !strings.Contains(text, "No files today") {
			t.Errorf("%s: text %q", name, text)
		}
	}
}

// countingQueue is the real store, counting the raw messages the Composer reads.
type countingQueue struct {
	*threads.Store
	raws atomic.Int32
}

func (q *countingQueue) RawMessage(ctx context.Context, id int64) ([]byte, error) {
	q.raws.Add(1)
	return q.Store.RawMessage(ctx, id)
}

// The Composer reads a raw message only for mail that carries its attachments: not for
// a confirmation, not for a notification about a message without files.
func TestComposerReadsRawOnlyForAttachments(t *testing.T) {
	t.Parallel()
	d := newAgentDesk(t)
	q := &countingQueue{Store: d.store}
	c := NewComposer(q, d.r, 2, slog.New(slog.NewTextHandler(io.Discard, nil)))
	accept := func(raw string) {
		if _, err := d.store.Accept(context.Background(), mailin.Envelope{Path: mailin.PathSMTP, MailFrom: "alice@example.com",
			Rcpts: []string{"support@example.test"}, Live: true}, []byte(raw)); err != nil {
			t.Fatal(err)
		}
		if _, err := d.store.ProcessPending(context.Background()); err != nil {
			t.Fatal(err)
		}
		for {
			n, err := c.ComposeDue(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return
			}
		}
	}
	accept("From: alice@example.com\r\nTo: support@example.test\r\nSubject: No files\r\nMessage-ID: <a1@example.com>\r\n\r\nMy printer is on fire.\r\n")
	if n := q.raws.Load(); n != 0 {
		t.Errorf("%d raw messages read for mail without attachments", n)
	}
	accept(withFiles("From: alice@example.com\r\nTo: support@example.test\r\nSubject: With a file\r\nMessage-ID: <a2@example.com>\r\n\r\nThe invoice is attached.\r\n", "",
		file("application/pdf", "invoice.pdf", binaryBytes(4<<10, 6))))
	if n := q.raws.Load(); n != 1 {
		t.Errorf("%d raw messages read for a confirmation and a notification with a file; want 1 (the notification's)", n)
	}
}

// A round of composing stops starting mail once what it holds reaches its bound
// (composeBatchBytes; lowered here); the rest is composed in the next rounds, none lost.
func TestComposerBoundsTheBytesOfARound(t *testing.T) {
	t.Parallel()
	d := newAgentDesk(t)
	for i := range 3 {
		raw := withFiles(fmt.Sprintf("From: c%d@example.com\r\nTo: support@example.test\r\nSubject: Big file %d\r\nMessage-ID: <big%d@example.com>\r\n\r\nA large scan.\r\n", i, i, i), "",
			file("image/tiff", "scan.tiff", binaryBytes(200<<10, byte(i))))
		if _, err := d.store.Accept(context.Background(), mailin.Envelope{Path: mailin.PathSMTP, MailFrom: fmt.Sprintf("c%d@example.com", i),
			Rcpts: []string{"support@example.test"}, Live: true}, []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.store.ProcessPending(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := NewComposer(d.store, d.r, 1, slog.New(slog.NewTextHandler(io.Discard, nil)))
	c.roundBytes = 100 << 10
	var rounds []int
	for {
		n, err := c.ComposeDue(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		rounds = append(rounds, n)
	}
	// Six mails: three confirmations, three notifications of about 270 KB. One worker
	// starts at most two more after the bound is reached (one composing, one handed over).
	total := 0
	for _, n := range rounds {
		total += n
		if n > 3 {
			t.Errorf("a round of %d mails", n)
		}
	}
	if total != 6 || len(rounds) < 2 {
		t.Errorf("rounds %v; want six mails in more than one round", rounds)
	}
	items, err := d.store.DueMail(context.Background(), farFuture, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Kind == "notification" && len(it.Raw) < 200<<10 {
			t.Errorf("notification %d is %d bytes: the scan did not go along", it.ID, len(it.Raw))
		}
	}
	if r := NewResponder(ResponderConfig{}, nil, nil); r.cfg.NotificationAttachmentCap != 10<<20 {
		t.Errorf("default cap %d, want 10 MiB", r.cfg.NotificationAttachmentCap)
	}
}

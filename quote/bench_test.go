package quote

import (
	"html"
	"os"
	"strings"
	"testing"
)

// benchReply is a realistic 4 KB customer reply: text, a signature, an attribution and
// the quoted notification with an older message quoted inside it.
func benchReply(b *testing.B) string {
	in, err := os.ReadFile("testdata/bench/reply.txt")
	if err != nil {
		b.Fatal(err)
	}
	return string(in)
}

func BenchmarkStrip(b *testing.B) {
	in := benchReply(b)
	if r := Strip(in); r.Marker != "attribution" || !strings.Contains(r.Signature, "Carla Díaz") {
		b.Fatalf("unexpected result: %+v", r)
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		Strip(in)
	}
}

// BenchmarkStripHTML: the same reply as Gmail's HTML.
func BenchmarkStripHTML(b *testing.B) {
	text := benchReply(b)
	i := strings.Index(text, "\nOn Mon")
	var h strings.Builder
	h.WriteString(`<div dir="ltr">`)
	for _, l := range strings.Split(text[:i], "\n") {
		h.WriteString("<div>" + html.EscapeString(l) + "<br></div>")
	}
	h.WriteString(`</div><div class="gmail_quote"><div class="gmail_attr">` + html.EscapeString(text[i+1:strings.Index(text, "wrote:")+6]) +
		`</div><blockquote class="gmail_quote">`)
	for _, l := range strings.Split(text[strings.Index(text, "wrote:")+6:], "\n") {
		h.WriteString(html.EscapeString(strings.TrimLeft(l, "> ")) + "<br>")
	}
	h.WriteString("</blockquote></div>")
	in := h.String()
	if r := StripHTML(in); r.Marker != "gmail_quote" || !strings.Contains(r.New, "Carla") {
		b.Fatalf("unexpected result: %+v", r)
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		StripHTML(in)
	}
}

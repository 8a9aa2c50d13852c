package threads

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestHostileMessages: the inputs SPEC §9 names are parsed in bounded time, never lose
// their text, and say what was cut. Each goes through the real store.
func TestHostileMessages(t *testing.T) {
	t.Parallel()
	var parts strings.Builder
	parts.WriteString("From: a@example.com\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
	for i := range 10_000 {
		fmt.Fprintf(&parts, "--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n", i)
	}
	parts.WriteString("--b--\r\n")

	var nested strings.Builder
	nested.WriteString("From: a@example.com\r\nSubject: nested\r\n")
	for i := range 5000 {
		fmt.Fprintf(&nested, "Content-Type: multipart/mixed; boundary=n%d\r\n\r\n--n%d\r\n", i, i)
	}
	nested.WriteString("Content-Type: text/plain\r\n\r\ndeep text\r\n")

	longHeader := "From: a@example.com\r\nSubject: long\r\nX-Long: " + strings.Repeat("x", 1<<20) + "\r\n\r\nbody after a 1 MB header line\r\n"
	nul := "From: a@example.com\r\nSubject: nul\x00bytes\r\n\r\nbefore\x00after\r\n"
	charset := "From: a@example.com\r\nSubject: =?x-unknown?Q?hi?=\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\nqapla'\r\n"

	for name, c := range map[string]struct {
		raw, wantText, wantNote string
	}{
		"10,000 parts":        {parts.String(), "part 0", "more than 1000 MIME parts"},
		"5,000 levels deep":   {nested.String(), "", "nesting deeper than 20"},
		"1 MB header line":    {longHeader, "body after a 1 MB header line", ""},
		"NUL bytes":           {nul, "beforeafter", ""},
		"unknown charset":     {charset, "qapla'", "charset"},
		"no header at all":    {"just text, no header\r\n", "just text", ""},
		"empty":               {"", "", ""},
		"truncated multipart": {"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\nContent-Type: text/plain\r\n\r\ncut off", "cut off", ""},
		"bad base64":          {"From: a@example.com\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n", "", ""},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			p := Parse([]byte(c.raw), DefaultParseLimits())
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("parse took %s", d)
			}
			if !strings.Contains(p.Body, c.wantText) {
				t.Errorf("text %q does not contain %q", ellipsize(p.Body, 200), c.wantText)
			}
			if c.wantNote != "" && !strings.Contains(strings.Join(p.Notes, "\n"), c.wantNote) {
				t.Errorf("notes %q lack %q", p.Notes, c.wantNote)
			}
			if strings.ContainsRune(p.Body, 0) || strings.ContainsRune(p.Subject, 0) {
				t.Error("a NUL byte reached the text")
			}
			s := openTestStore(t, nil)
			accept(t, s, c.raw)
			if n := process(t, s); n != 1 {
				t.Fatalf("filed %d", n)
			}
		})
	}
}

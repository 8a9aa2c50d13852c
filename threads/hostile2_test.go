package threads

import (
	"strings"
	"testing"
	"time"

	"github.com/replydesk/replydesk/agentcmd"
)

// TestHostileHugeRepliesStayFast: a reply built to make quote stripping, command parsing
// or token scanning slow (megabytes of '#' lines, deep '>' quoting, thousands of
// attributions and signatures, deeply nested HTML quotes) is read in bounded time.
func TestHostileHugeRepliesStayFast(t *testing.T) {
	t.Parallel()
	size, nest := 4<<20, 100000
	if raceEnabled {
		size, nest = size/16, nest/16 // the same shapes, a size the race detector can time
	}
	head := "From: a@x.test\r\nSubject: s\r\n\r\n"
	html := "From: a@x.test\r\nSubject: s\r\nContent-Type: text/html\r\n\r\n"
	for name, raw := range map[string]string{
		"# lines":            head + strings.Repeat("#status open\r\n", size/14),
		"deep > quoting":     head + "hi\r\n" + strings.Repeat(strings.Repeat(">", 500)+" x\r\n", size/505),
		"attributions":       head + strings.Repeat("On Mon, 2 Nov 2026, X wrote:\r\n", size/30),
		"signatures":         head + strings.Repeat("-- \r\nx\r\n", size/8),
		"outlook headers":    head + strings.Repeat("From: x\r\nSent: y\r\n", size/18),
		"ref: lines":         head + strings.Repeat("ref:a1-aaaaaaaa-aaaaaaaaaaaaa ", size/30),
		"nested blockquotes": html + strings.Repeat("<blockquote>", nest) + "x" + strings.Repeat("</blockquote>", nest),
		"gmail_quote divs":   html + strings.Repeat("<div class=gmail_quote><p>x</p>", nest),
		"html # lines":       html + strings.Repeat("<p>#note</p>", nest*5/2),
	} {
		start := time.Now()
		p := Parse([]byte(raw), DefaultParseLimits())
		agentcmd.Parse(p.New)
		TokenCandidates(nil, p.Body)
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s (%d bytes): %s", name, len(raw), d)
		}
	}
}

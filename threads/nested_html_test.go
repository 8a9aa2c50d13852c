package threads

import (
	"strings"
	"testing"
	"time"
)

// A hostile sender's 400 KB of nested <div> is parsed in bounded time (html.Parse is
// quadratic in the nesting depth: this took minutes).
func TestNestedHTMLIsFast(t *testing.T) {
	t.Parallel()
	raw := "From: a@example.com\r\nTo: support@example.test\r\nSubject: nest\r\nContent-Type: text/html\r\n\r\n" + strings.Repeat("<div>", 80000) + "hello" + strings.Repeat("</div>", 80000)
	start := time.Now()
	p := Parse([]byte(raw), DefaultParseLimits())
	if d := time.Since(start); d > 5*time.Second || !strings.Contains(p.Body, "hello") {
		t.Fatalf("400 KB of nested <div>: %s, body %q", d, p.Body[:min(len(p.Body), 50)])
	}
}

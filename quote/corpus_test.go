package quote

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	_ "github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
)

// corpusDir is the shared corpus beside the repository; tests skip cleanly without it.
const corpusDir = "../../shared/corpora/replies"

func corpusOrSkip(t *testing.T, sub string) string {
	t.Helper()
	dir := filepath.Join(corpusDir, sub)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("corpus %s not present (%v)", dir, err)
	}
	return dir
}

// normWS is the whitespace-normalised form the agreement is measured on.
func normWS(s string) string { return strings.Join(strings.Fields(s), " ") }

// TestCorpusEmailReplyTrimmer measures agreement with discourse/email_reply_trimmer's
// trimmed text (the visible reply, quote and signature removed): New must equal it.
func TestCorpusEmailReplyTrimmer(t *testing.T) {
	t.Parallel()
	dir := corpusOrSkip(t, "email_reply_trimmer")
	files, _ := filepath.Glob(filepath.Join(dir, "emails", "*.txt"))
	sort.Strings(files)
	agree := 0
	for _, f := range files {
		in, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(dir, "trimmed", filepath.Base(f)))
		if err != nil {
			t.Fatal(err)
		}
		got := Strip(string(in))
		if normWS(got.New) == normWS(string(want)) {
			agree++
			continue
		}
		t.Logf("differs: %s\n got: %q\nwant: %q", filepath.Base(f), got.New, want)
	}
	report(t, "email_reply_trimmer trimmed text", agree, len(files), 0.95)
}

// TestCorpusTalon measures agreement with mailgun/talon's expected replies. talon removes
// quotations only and keeps signatures ("Sent from my iPhone", "-- " blocks), so its
// expectation is compared with New and Signature together; New alone is printed too.
func TestCorpusTalon(t *testing.T) {
	t.Parallel()
	dir := corpusOrSkip(t, "talon")
	b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var expected map[string]string
	if err := json.Unmarshal(b, &expected); err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range expected {
		if !strings.HasPrefix(name, "_") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	agree, agreeNew := 0, 0
	for _, name := range names {
		var r Result
		switch {
		case strings.HasSuffix(name, ".eml"):
			r = Strip(plainPart(t, filepath.Join(dir, name)))
		case strings.HasSuffix(name, ".html"):
			src, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			r = StripHTML(string(src))
		default:
			continue
		}
		want := normWS(expected[name])
		if normWS(r.New) == want {
			agreeNew++
		}
		if normWS(r.New+"\n"+r.Signature) == want {
			agree++
			continue
		}
		t.Logf("differs: %s\n got: %q + signature %q\nwant: %q", name, r.New, r.Signature, expected[name])
	}
	report(t, "talon reply (New + Signature)", agree, len(names), 0.90)
	report(t, "talon reply (New alone, informational)", agreeNew, len(names), 0)
}

func report(t *testing.T, what string, agree, total int, bar float64) {
	t.Helper()
	if total == 0 {
		t.Fatalf("%s: no cases", what)
	}
	pct := float64(agree) / float64(total)
	// Printed, not logged: the figures are the point of the test.
	fmt.Printf("agreement: %s: %d/%d = %.1f %%\n", what, agree, total, 100*pct)
	if pct < bar {
		t.Errorf("%s: agreement %.1f %% below %.0f %%", what, 100*pct, 100*bar)
	}
}

// plainPart returns the decoded text/plain part of a message file.
func plainPart(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := mail.CreateReader(f)
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, err := r.NextPart()
		if err != nil {
			break
		}
		h, ok := p.Header.(*mail.InlineHeader)
		if !ok {
			continue
		}
		if ct, _, _ := h.ContentType(); ct == "text/plain" || ct == "" {
			b, err := io.ReadAll(p.Body)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
	t.Fatalf("%s: no text/plain part", path)
	return ""
}

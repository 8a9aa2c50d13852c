package threads

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// corpusDir is the shared corpus beside the repository; tests skip cleanly without it.
const corpusDir = "../../shared/corpora"

func corpusOrSkip(t testing.TB, sub string) string {
	t.Helper()
	dir := filepath.Join(corpusDir, sub)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("corpus %s not present (%v)", dir, err)
	}
	return dir
}

// corpusCase is one corpus message and the text body its source project expects ("" when
// it expects none).
type corpusCase struct {
	file, want string
	hasWant    bool
}

func mimeCorpus(t testing.TB) []corpusCase {
	var cases []corpusCase
	stalwart := corpusOrSkip(t, "mime/stalwart")
	emls, _ := filepath.Glob(filepath.Join(stalwart, "*", "*.eml"))
	for _, f := range emls {
		want, ok := stalwartText(strings.TrimSuffix(f, ".eml") + ".json")
		cases = append(cases, corpusCase{f, want, ok})
	}
	mmp := filepath.Join(corpusOrSkip(t, "mime/mail-mime-parser"), "emails")
	var expected map[string]struct {
		Text string `json:"text"`
	}
	if b, err := os.ReadFile(filepath.Join(mmp, "..", "expected.json")); err == nil {
		json.Unmarshal(b, &expected)
	}
	txts, _ := filepath.Glob(filepath.Join(mmp, "*.txt"))
	for _, f := range txts {
		c := corpusCase{file: f}
		if e, ok := expected[strings.TrimSuffix(filepath.Base(f), ".txt")]; ok && e.Text != "" {
			if b, err := os.ReadFile(filepath.Join(mmp, "files", e.Text)); err == nil {
				c.want, c.hasWant = latin1IfNotUTF8(b), true
			}
		}
		cases = append(cases, c)
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].file < cases[j].file })
	return cases
}

// stalwartText joins the plain-text bodies stalwart's parser found.
func stalwartText(jsonFile string) (string, bool) {
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		return "", false
	}
	var doc struct {
		TextBody []int `json:"text_body"`
		Parts    []struct {
			Body map[string]json.RawMessage `json:"body"`
		} `json:"parts"`
	}
	if json.Unmarshal(b, &doc) != nil {
		return "", false
	}
	var texts []string
	for _, i := range doc.TextBody {
		if i >= len(doc.Parts) {
			continue
		}
		var s string
		if raw, ok := doc.Parts[i].Body["Text"]; ok && json.Unmarshal(raw, &s) == nil {
			texts = append(texts, s)
		}
	}
	return strings.Join(texts, "\n"), len(texts) > 0
}

// latin1IfNotUTF8: mail-mime-parser's expected files are ISO-8859-1; replydesk's text
// is UTF-8.
func latin1IfNotUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// firstDifference shows both strings around where they first differ.
func firstDifference(a, b string) (string, string) {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	from := max(i-40, 0)
	return ellipsize(a[from:], 120), ellipsize(b[from:], 120)
}

func normalizeSpace(s string) string { return strings.Join(strings.Fields(s), " ") }

// TestMIMECorpus parses every corpus message through the real store (accept, process,
// show) and compares the text with what the corpus's own project expects. It fails on a
// crash, a hang, a message not filed, or an empty text where text was expected; the
// agreement figure is reported, and the disagreements are listed with -v.
func TestMIMECorpus(t *testing.T) {
	t.Parallel()
	cases := mimeCorpus(t)
	s := openTestStore(t, nil)
	ids := map[string]int64{}
	for _, c := range cases {
		raw, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		ids[c.file] = accept(t, s, string(raw)).ID
	}
	start := time.Now()
	process(t, s)
	if d := time.Since(start); d > time.Minute {
		t.Errorf("parsing %d corpus messages took %s", len(cases), d)
	}
	bodies := map[int64]Message{}
	list, err := s.Tickets(t.Context(), TicketFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range list {
		full, err := s.Ticket(t.Context(), tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range full.Messages {
			bodies[m.InboxID] = m
		}
	}
	agree, withText, malformed := 0, 0, 0
	for _, c := range cases {
		m, ok := bodies[ids[c.file]]
		if !ok {
			// Duplicate bytes in the corpus share one stored message.
			t.Logf("%s: stored as a duplicate of another corpus file", c.file)
			continue
		}
		if contains(m.Flags, "malformed") {
			malformed++
		}
		if !c.hasWant {
			continue
		}
		withText++
		if strings.TrimSpace(c.want) != "" && strings.TrimSpace(m.Text) == "" {
			t.Errorf("%s: empty text, corpus expects %q", c.file, ellipsize(c.want, 80))
		}
		if normalizeSpace(m.Text) == normalizeSpace(c.want) {
			agree++
		} else {
			want, got := firstDifference(normalizeSpace(c.want), normalizeSpace(m.Text))
			t.Logf("disagree %s:\n  want …%q\n   got …%q", c.file, want, got)
		}
	}
	t.Logf("MIME corpus: %d messages, %d flagged malformed; text agrees (whitespace-normalised) on %d of %d with an expected text body",
		len(cases), malformed, agree, withText)
}

func ellipsize(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

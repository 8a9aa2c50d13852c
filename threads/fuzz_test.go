package threads

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// seedFromCorpus adds every corpus message (when present) and the testdata fixtures.
func seedFromCorpus(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.eml")
	for _, sub := range []string{"mime/stalwart/*/*.eml", "mime/mail-mime-parser/emails/*.txt", "threads/notmuch/*/*/*"} {
		more, _ := filepath.Glob(filepath.Join(corpusDir, sub))
		files = append(files, more...)
	}
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil && len(b) < 256<<10 {
			f.Add(b)
		}
	}
	f.Add([]byte("From: a@b\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: multipart/mixed; boundary=y\r\n\r\n--y\r\n\r\nhi\r\n--y--\r\n--x--\r\n"))
}

// FuzzParse: Parse never panics, stays within its time budget, and yields valid UTF-8.
func FuzzParse(f *testing.F) {
	seedFromCorpus(f)
	lim := DefaultParseLimits()
	lim.Budget = time.Second
	f.Fuzz(func(t *testing.T, raw []byte) {
		start := time.Now()
		p := Parse(raw, lim)
		if d := time.Since(start); d > 3*lim.Budget {
			t.Fatalf("parse took %s", d)
		}
		for _, s := range append([]string{p.Body, p.Subject, p.From, p.MessageID}, p.Notes...) {
			if !utf8.ValidString(s) && s != p.MessageID && s != p.From {
				t.Fatalf("invalid UTF-8 in %q", s)
			}
		}
		if strings.ContainsAny(p.Subject, "\r\n") {
			t.Fatalf("subject holds a line break: %q", p.Subject)
		}
		if strings.HasPrefix(string(raw), "From: ") && !p.Malformed && p.Header.Len() == 0 {
			t.Fatalf("a header that starts like one was lost")
		}
	})
}

// FuzzMsgIDList: the lenient reference reader never panics, never yields an id with
// brackets, whitespace or control characters, and keeps at most maxRefs.
func FuzzMsgIDList(f *testing.F) {
	for _, s := range []string{"<a@b>", "<a@b> <c@d>", "<a@b>,<c@d>", "<a@b> junk <c@d>", "a@b", "<a b@c>", "<<a@b>>", "", "<>", "<a@B.Example>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		ids := MsgIDList(v)
		if len(ids) > maxRefs {
			t.Fatalf("%d ids", len(ids))
		}
		seen := map[string]bool{}
		for _, id := range ids {
			if id == "" || strings.ContainsAny(id, "<> \t\r\n") || !validMsgID(id) || seen[id] {
				t.Fatalf("bad id %q from %q", id, v)
			}
			seen[id] = true
		}
		if MessageID(v) != "" && (len(ids) == 0 || MessageID(v) != ids[0]) {
			t.Fatalf("MessageID disagrees with MsgIDList on %q", v)
		}
	})
}

// FuzzTokenCheck: the token parser never panics, and anything it accepts is exactly a
// token this key would have minted (no forgery passes, whatever the spelling).
func FuzzTokenCheck(f *testing.F) {
	tokens := NewTokens([]byte("fuzz-secret-0123456789"))
	for _, s := range []string{tokens.Customer(1), tokens.Customer(123456789), tokens.Agent(7, "ana@example.test"),
		"r1-aaaaaaaaaaaaa", "a1-aaaaaaaa-aaaaaaaaaaaaa", "R1-AAAAAAAAAAAAA", "r0-", "r99999999999999999999-x", ""} {
		f.Add(s, "ref:"+s)
	}
	f.Fuzz(func(t *testing.T, tok, body string) {
		claim, err := tokens.Check(tok)
		if err == nil {
			want := tokens.Customer(claim.Ticket)
			if claim.Agent != "" {
				want = fmt.Sprintf("a%d-%s-%s", claim.Ticket, claim.Agent, tokens.mac("a", claim.Ticket, claim.Agent))
			}
			if strings.ToLower(tok) != want {
				t.Fatalf("accepted %q, which is not the minted %q", tok, want)
			}
		}
		for _, c := range TokenCandidates([]string{"support+" + tok + "@example.test"}, body) {
			tokens.Check(c)
		}
	})
}

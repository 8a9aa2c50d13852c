package agentcmd

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	st := func(v string, line int) Command { return Command{Name: NameStatus, Arg: v, Line: line} }
	tests := []struct {
		name     string
		text     string
		commands []Command
		reply    string
		note     string
		hasNote  bool
		errs     []string // Msg of each error, in order, as substrings
		errLines []int
	}{
		{name: "no commands", text: "Hello Alice,\n\nIt works now.\n", reply: "Hello Alice,\n\nIt works now.\n"},
		{name: "leading blank lines skipped", text: "\n  \r\n\t\nHello\n", reply: "Hello\n"},
		{name: "empty", text: ""},
		{name: "only blank", text: "\n \n\r\n"},
		{name: "resolve alone", text: "#resolve\n", commands: []Command{st("resolved", 1)}},
		{name: "resolve crlf and blank tail", text: "#resolve\r\n\r\n  \r\n", commands: []Command{st("resolved", 1)}},
		{
			name:     "commands then reply",
			text:     "#status pending\n#priority high\n\nHello Alice,\n#1 priority for us is you.\n#hashtag\n",
			commands: []Command{st("pending", 1), {Name: NamePriority, Arg: "high", Line: 2}},
			reply:    "Hello Alice,\n#1 priority for us is you.\n#hashtag\n",
		},
		{
			name:     "case, colon, dot, spaces",
			text:     "  #STATUS:   Pending.\n#Priority:URGENT:\n #category  Billing .\n#Resolve.\nok",
			commands: []Command{st("pending", 1), {Name: NamePriority, Arg: "urgent", Line: 2}, {Name: NameCategory, Arg: "billing", Line: 3}},
			errs:     []string{"#status resolved conflicts with line 1 (#status pending)"},
			errLines: []int{4},
			reply:    "ok",
		},
		{name: "status colon", text: "#status: pending\nThanks", commands: []Command{st("pending", 1)}, reply: "Thanks"},
		{name: "nbsp and bom", text: "\uFEFF#status\u00a0open\u00a0\nHi", commands: []Command{st("open", 1)}, reply: "Hi"},
		{name: "blank lines between commands", text: "\n\n#assign me\n\n\n#category technical\n\n  Indented reply\n", commands: []Command{{Name: NameAssign, Arg: "me", Line: 3}, {Name: NameCategory, Arg: "technical", Line: 6}}, reply: "  Indented reply\n"},
		{name: "assign name collapsed", text: "#assign   Ana   Lopez.\n", commands: []Command{{Name: NameAssign, Arg: "Ana Lopez", Line: 1}}},
		{name: "assign address", text: "#assign: ana@example.com.\n", commands: []Command{{Name: NameAssign, Arg: "ana@example.com", Line: 1}}},
		{name: "same command twice is fine", text: "#resolve\n#status resolved\n", commands: []Command{st("resolved", 1), st("resolved", 2)}},
		{
			name: "note takes the rest", text: "#priority low\n#note: customer is on the phone too.\n#status open\nSecond line\n",
			commands: []Command{{Name: NamePriority, Arg: "low", Line: 1}}, hasNote: true,
			note: "customer is on the phone too.\n#status open\nSecond line",
		},
		{name: "note alone", text: "#note\n\n  Call them tomorrow.\n\n", hasNote: true, note: "Call them tomorrow."},
		{name: "empty note", text: "#Note.", hasNote: true},
		{name: "typo status", text: "#staus pending\nHello", errs: []string{"unknown command #staus (did you mean #status?)"}, errLines: []int{1}, reply: "Hello"},
		{name: "typo priority value", text: "#priority hgh\n", errs: []string{"#priority: 'hgh' is not one of low, normal, high, urgent (did you mean high?)"}, errLines: []int{1}},
		{name: "bad status value", text: "#status closed\n", errs: []string{"#status: 'closed' is not one of open, pending, resolved"}, errLines: []int{1}},
		{name: "bad category", text: "#category sales\n", errs: []string{"#category: 'sales' is not one of billing, technical, account, feature, other"}, errLines: []int{1}},
		{name: "missing value", text: "#priority\n", errs: []string{"#priority needs a value: low, normal, high, urgent"}, errLines: []int{1}},
		{name: "two values", text: "#status pending resolved\n", errs: []string{"#status takes one value"}, errLines: []int{1}},
		{name: "resolve with value", text: "#resolve now\n", errs: []string{"#resolve takes no value"}, errLines: []int{1}},
		{name: "assign empty", text: "#assign.\n", errs: []string{"#assign needs an agent"}, errLines: []int{1}},
		{name: "assign too long", text: "#assign " + strings.Repeat("a", 400) + "\n", errs: []string{"too long"}, errLines: []int{1}},
		{name: "hint close", text: "#close\n", errs: []string{"unknown command #close (did you mean #resolve?)"}, errLines: []int{1}},
		{name: "far unknown", text: "#hashtag\nHello", errs: []string{"unknown command #hashtag (commands: #note, #status"}, errLines: []int{1}, reply: "Hello"},
		{name: "number at top is an error", text: "#1 priority for us is you\nHi", errs: []string{"unknown command #1 (commands:", "put another line first"}, errLines: []int{1, 1}, reply: "Hi"},
		{name: "hash alone", text: "# \n# Heading\n", errs: []string{"'#' without a command", "'#' without a command"}, errLines: []int{1, 2}},
		{name: "notes is a typo not a note", text: "#notes call them\nHello", errs: []string{"did you mean #note?"}, errLines: []int{1}, reply: "Hello"},
		{name: "long word", text: "#" + strings.Repeat("x", 100) + " y\n", errs: []string{"unknown command #" + strings.Repeat("x", 32) + "…"}, errLines: []int{1}},
		{
			name:     "errors and commands mixed",
			text:     "#status pending\n#staus open\n#priority high\nreply",
			commands: []Command{st("pending", 1), {Name: NamePriority, Arg: "high", Line: 3}},
			errs:     []string{"did you mean #status?"}, errLines: []int{2}, reply: "reply",
		},
		{name: "conflicting assign", text: "#assign ana\n#assign ANA\n#assign bob\n", commands: []Command{{Name: NameAssign, Arg: "ana", Line: 1}, {Name: NameAssign, Arg: "ANA", Line: 2}}, errs: []string{"conflicts with line 1"}, errLines: []int{3}},
		{name: "no final newline", text: "#resolve", commands: []Command{st("resolved", 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Parse(tt.text)
			if !reflect.DeepEqual(r.Commands, tt.commands) {
				t.Errorf("commands = %+v, want %+v", r.Commands, tt.commands)
			}
			if r.Reply != tt.reply {
				t.Errorf("reply = %q, want %q", r.Reply, tt.reply)
			}
			if r.HasNote != tt.hasNote || r.Note != tt.note {
				t.Errorf("note = %v %q, want %v %q", r.HasNote, r.Note, tt.hasNote, tt.note)
			}
			var lines []int
			for _, e := range r.Errors {
				lines = append(lines, e.Line)
			}
			// errs may name several substrings of the same error (errLines repeats its line).
			var got []int
			for i, want := range tt.errs {
				found := false
				for _, e := range r.Errors {
					if e.Line == tt.errLines[i] && strings.Contains(e.Msg, want) {
						found = true
					}
				}
				if !found {
					t.Errorf("no error on line %d containing %q; errors: %+v", tt.errLines[i], want, r.Errors)
				}
				if len(got) == 0 || got[len(got)-1] != tt.errLines[i] {
					got = append(got, tt.errLines[i])
				}
			}
			if !reflect.DeepEqual(lines, got) {
				t.Errorf("error lines = %v, want %v (%+v)", lines, got, r.Errors)
			}
			if r.OK() != (len(r.Errors) == 0) {
				t.Error("OK disagrees with Errors")
			}
			checkInvariants(t, tt.text, r)
		})
	}
}

func TestLineErrorText(t *testing.T) {
	r := Parse("\n   #staus pending   \n")
	if len(r.Errors) != 1 {
		t.Fatalf("errors = %+v", r.Errors)
	}
	e := r.Errors[0]
	if e.Line != 2 || e.Text != "#staus pending" {
		t.Errorf("error = %+v", e)
	}
	want := `line 2: "#staus pending": unknown command #staus (did you mean #status?)`
	if e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
	long := Parse("#" + strings.Repeat("é", 300))
	if n := len(long.Errors[0].Text); n > maxErrText+len(ellipsis) {
		t.Errorf("Text is %d bytes", n)
	}
}

func TestTooManyCommandLines(t *testing.T) {
	var b strings.Builder
	for range MaxCommandLines + 10 {
		b.WriteString("#priority high\n")
	}
	b.WriteString("Hello\n")
	r := Parse(b.String())
	if len(r.Commands) != MaxCommandLines {
		t.Errorf("%d commands, want %d", len(r.Commands), MaxCommandLines)
	}
	if len(r.Errors) != 1 || r.Errors[0].Line != MaxCommandLines+1 || !strings.Contains(r.Errors[0].Msg, "too many command lines") {
		t.Errorf("errors = %+v", r.Errors)
	}
	if r.Reply != "Hello\n" {
		t.Errorf("reply = %q", r.Reply)
	}
	checkInvariants(t, b.String(), r)

	// Exactly the limit is fine.
	r = Parse(strings.Repeat("#resolve\n", MaxCommandLines))
	if !r.OK() || len(r.Commands) != MaxCommandLines {
		t.Errorf("at the limit: %d commands, errors %+v", len(r.Commands), r.Errors)
	}
}

// TestParseLargeInputIsFast: 10 MB with a million '#' lines parses in well under a
// second (linear, and nothing after the first MaxCommandLines lines is looked at twice).
func TestParseLargeInputIsFast(t *testing.T) {
	inputs := map[string]string{
		"million commands":       strings.Repeat("#status pending\n", 1<<20)[:10<<20],
		"million typos":          strings.Repeat("#staus pendin\n", 750_000),
		"one huge line":          "#priority " + strings.Repeat("h", 10<<20),
		"huge note":              "#note\n" + strings.Repeat("#x\n", 3<<20),
		"prose with hashes":      "Hello\n" + strings.Repeat("#tag\n", 2<<20),
		"million blank then cmd": strings.Repeat(" \n", 5<<20) + "#resolve\n",
	}
	for name, text := range inputs {
		start := time.Now()
		r := Parse(text)
		d := time.Since(start)
		t.Logf("%s: %d bytes in %v (%d commands, %d errors)", name, len(text), d, len(r.Commands), len(r.Errors))
		if d > time.Second {
			t.Errorf("%s: %v", name, d)
		}
		if len(r.Errors) > MaxCommandLines+1 || len(r.Commands) > MaxCommandLines {
			t.Errorf("%s: %d commands, %d errors", name, len(r.Commands), len(r.Errors))
		}
	}
}

func BenchmarkParse10MB(b *testing.B) {
	text := strings.Repeat("#status pending\n", 1<<20)[:10<<20]
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		Parse(text)
	}
}

func TestLevenshtein(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"staus", "status", 1}, {"stauts", "status", 2}, {"hgh", "high", 1}, {"note", "note", 0}, {"pénding", "pending", 1}, {"", "abc", 3}} {
		if d := levenshtein(c.a, c.b); d != c.d {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", c.a, c.b, d, c.d)
		}
	}
}

func TestResolveAssignee(t *testing.T) {
	agents := []Agent{
		{Email: "ana@example.com", Name: "Ana Lopez"},
		{Email: "Bob.Stone@Example.com", Name: "Bob Stone"},
		{Email: "carl@example.com"},
		{Email: "ana.b@example.com", Name: "Ana Barros"},
		{Email: "dora@example.com", Name: "Dora"},
	}
	const me = "bob.stone@example.com"
	tests := []struct {
		arg, want, err string
	}{
		{arg: "me", want: me},
		{arg: "ME.", want: me},
		{arg: "ana@example.com", want: "ana@example.com"},
		{arg: "ANA@EXAMPLE.COM", want: "ana@example.com"},
		{arg: "bob.stone@example.com", want: "Bob.Stone@Example.com"},
		{arg: "<carl@example.com>", want: "carl@example.com"},
		{arg: "Carl <CARL@example.com>", want: "carl@example.com"},
		{arg: "ana lopez", want: "ana@example.com"},
		{arg: "  Ana   Barros ", want: "ana.b@example.com"},
		{arg: "bob", want: "Bob.Stone@Example.com"},
		{arg: "dora", want: "dora@example.com"},
		{arg: "carl", want: "carl@example.com"},
		{arg: "Ana", err: `#assign: "Ana" could be Ana Lopez <ana@example.com>, Ana Barros <ana.b@example.com>: write the address`},
		{arg: "zed@example.com", err: "#assign: zed@example.com is not an agent (agents: Ana Lopez <ana@example.com>, Bob Stone <Bob.Stone@Example.com>, carl@example.com, Ana Barros <ana.b@example.com>, Dora <dora@example.com>)"},
		{arg: "Zed", err: `#assign: no agent is called "Zed" (agents: Ana Lopez`},
		{arg: "", err: "#assign needs an agent"},
		{arg: "Lopez", err: "no agent is called"},
	}
	for _, tt := range tests {
		got, err := ResolveAssignee(tt.arg, me, agents)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ResolveAssignee(%q) = %q, %v; want error %q", tt.arg, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ResolveAssignee(%q) = %q, %v; want %q", tt.arg, got, err, tt.want)
		}
	}
	if _, err := ResolveAssignee("me", "", agents); err == nil {
		t.Error("me without a sender: no error")
	}
	if _, err := ResolveAssignee("ana", me, nil); err == nil || !strings.Contains(err.Error(), "none configured") {
		t.Errorf("no agents: %v", err)
	}
	many := make([]Agent, 25)
	for i := range many {
		many[i] = Agent{Email: strings.Repeat("x", i+1) + "@example.com"}
	}
	if _, err := ResolveAssignee("nobody", me, many); err == nil || !strings.Contains(err.Error(), "and 15 more") {
		t.Errorf("many agents: %v", err)
	}
}

// TestParseThenResolve is how filing uses the two together.
func TestParseThenResolve(t *testing.T) {
	agents := []Agent{{Email: "ana@example.com", Name: "Ana Lopez"}}
	r := Parse("#assign ana.\n#resolve\n\nDone, see you.\n-- \n")
	if !r.OK() || len(r.Commands) != 2 {
		t.Fatalf("%+v", r)
	}
	email, err := ResolveAssignee(r.Commands[0].Arg, "bob@example.com", agents)
	if err != nil || email != "ana@example.com" {
		t.Errorf("assign %q: %q, %v", r.Commands[0].Arg, email, err)
	}
	if r.Reply != "Done, see you.\n-- \n" {
		t.Errorf("reply %q", r.Reply)
	}
}

package agentcmd

import (
	"strings"
	"testing"
)

// FuzzParse checks Parse's contract on any input:
//
//   - it does not panic;
//   - Reply == text[k:] where k == len(text)-len(Reply) is the start of a line (0, or
//     text[k-1] == '\n'); when Reply != "" its first line is not blank and does not start
//     with '#' after white space; every line before k is blank or starts with '#'
//     (only the leading white space of the reply's *lines before it* is dropped, never a
//     byte of the reply itself);
//   - with a #note, Reply is "" and the #note line is a '#' line;
//   - every Command.Name is one of the known names, with a value the command accepts;
//   - every '#' line of the block, up to MaxCommandLines of them, has a command or an
//     error on its line (or is the #note line), and the (MaxCommandLines+1)th has the
//     "too many" error; no command or error names a line outside the block;
//   - Parse(Reply) finds no commands, no errors and the same Reply.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "\n", "#resolve", "#status pending\n\nHello\n#1 priority\n", "#note: hi\n#status open",
		"#staus pending", "  #Priority: HGH.\r\n", "#assign Ana Lopez\n#assign me\n", "#\n# x\n#:",
		"\uFEFF#category billing\nok", "#status\u00a0open\u2028x\nHi", strings.Repeat("#resolve\n", 60) + "x",
		"#notes\n", "#" + strings.Repeat("a", 40), "\xff#\xfe\n#status \xffx", "#status: pending:.\n \t\n text",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		checkInvariants(t, text, Parse(text))
	})
}

// checkInvariants verifies the contract described on FuzzParse.
func checkInvariants(t *testing.T, text string, r Result) {
	t.Helper()
	if !strings.HasSuffix(text, r.Reply) {
		t.Fatalf("reply %q is not a suffix of the text", r.Reply)
	}
	k := len(text) - len(r.Reply)
	if r.Reply != "" {
		if k > 0 && text[k-1] != '\n' {
			t.Fatalf("reply does not start at a line: %q", text[max(0, k-10):k])
		}
		firstLine, _, _ := strings.Cut(r.Reply, "\n")
		if b := trimSpace(firstLine); b == "" || b[0] == '#' {
			t.Fatalf("reply starts with a blank or '#' line: %q", firstLine)
		}
	}
	if r.HasNote && r.Reply != "" {
		t.Fatalf("reply %q with a note", r.Reply)
	}
	if !r.HasNote && r.Note != "" {
		t.Fatalf("note %q without HasNote", r.Note)
	}
	// Walk the block: everything before k (or up to the #note line).
	block := text[:k]
	lines := strings.Split(block, "\n")
	if r.Reply != "" {
		lines = lines[:len(lines)-1] // the "" after the last '\n' before the reply
	}
	covered := map[int]bool{}
	for _, c := range r.Commands {
		covered[c.Line] = true
		var ok bool
		switch c.Name {
		case NameStatus:
			ok = contains(StatusValues, c.Arg)
		case NameCategory:
			ok = contains(CategoryValues, c.Arg)
		case NamePriority:
			ok = contains(PriorityValues, c.Arg)
		case NameAssign:
			ok = c.Arg != "" && c.Arg == strings.Join(strings.Fields(c.Arg), " ")
		}
		if !ok {
			t.Fatalf("command %+v", c)
		}
	}
	for _, e := range r.Errors {
		covered[e.Line] = true
		if e.Msg == "" {
			t.Fatalf("error without a message: %+v", e)
		}
	}
	if r.HasNote {
		covered[r.NoteLine] = true
	}
	hashes := 0
	lastLine := len(lines)
	if r.HasNote {
		lastLine = r.NoteLine
	}
	for i, l := range lines {
		n := i + 1
		b := trimSpace(l)
		if r.HasNote && n > r.NoteLine {
			break // the note's text
		}
		if b == "" {
			if covered[n] {
				t.Fatalf("blank line %d has a command or error", n)
			}
			continue
		}
		if b[0] != '#' {
			t.Fatalf("line %d before the reply is prose: %q", n, l)
		}
		hashes++
		switch {
		case hashes <= MaxCommandLines && !covered[n]:
			t.Fatalf("'#' line %d %q has no command and no error", n, l)
		case hashes == MaxCommandLines+1 && (len(r.Errors) == 0 || r.Errors[len(r.Errors)-1].Line != n):
			t.Fatalf("line %d is over the limit but has no error", n)
		}
	}
	for n := range covered {
		if n < 1 || n > lastLine {
			t.Fatalf("command or error on line %d outside the block (1..%d)", n, lastLine)
		}
	}
	if r.HasNote {
		if b := trimSpace(lines[r.NoteLine-1]); b == "" || b[0] != '#' {
			t.Fatalf("note line %d is %q", r.NoteLine, b)
		}
	}
	if r.Reply != "" {
		again := Parse(r.Reply)
		if again.Reply != r.Reply || len(again.Commands) > 0 || len(again.Errors) > 0 || again.HasNote {
			t.Fatalf("Parse(Reply) = %+v", again)
		}
	}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// Package agentcmd reads the #commands at the top of an agent's reply (SPEC §6).
//
// An agent steers a ticket from their mail client by writing lines that start with '#'
// above their answer:
//
//	#status pending
//	#priority high
//	#assign me
//
//	Hello Alice, the export works again ...
//
// Parse takes the reply text after quotes and signature were stripped and splits it
// into the commands, an internal note (#note) and the text to relay to the customer. It
// does no I/O and changes nothing: the caller applies the commands, and applies none of
// them, and relays nothing, when Result.Errors is not empty (SPEC §6: an invalid command
// line changes nothing, relays nothing, and the agent is told what was wrong).
//
// The grammar, precisely:
//
//   - Lines are separated by '\n'; a '\r' before it is white space. Line numbers start
//     at 1 and count every line of the text, blank ones included.
//   - White space is anything unicode.IsSpace reports, plus U+FEFF and U+200B (a byte
//     order mark or zero-width space that some clients put at the start of a text).
//   - Leading blank lines are skipped. Then every line whose first non-space character is
//     '#' is a command line, until the first non-blank line that does not start with '#'
//     (blank lines between command lines belong to the block). That line and everything
//     after it is Result.Reply, byte for byte.
//   - A command line is '#', the command name, optionally ':' and the value:
//     "#status pending", "#Status: Pending.", "#resolve". Names and values are
//     case-insensitive; extra spaces and a trailing '.' or ':' are tolerated.
//   - Every line in the block is a command or an error: a '#' line at the top whose name
//     is not a command ("#staus", "#1 priority for us is ...", "# Heading") is an error
//     (with a "did you mean" when it is close to one), because guessing would risk
//     relaying the agent's commands, or a half-applied intention, to the customer. A '#'
//     line after the first prose line is prose, never a command.
//   - "#note" ends the block: the rest of its line and every line after it are the
//     internal note (Result.Note), nothing is relayed (Reply is ""), and no command after
//     it is read.
//   - At most MaxCommandLines command lines are read; one more is an error ("too many
//     command lines") and the rest of the block is skipped unread, so the work is linear
//     in the text and bounded per line.
package agentcmd

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxCommandLines is the most command lines Parse reads at the top of a reply.
const MaxCommandLines = 50

const (
	maxNameLen  = 32  // a longer '#word' is not looked up or compared
	maxArgLen   = 320 // longer than any address (254) or agent name
	maxErrText  = 200 // LineError.Text is cut to this many bytes
	maxSuggest  = 2   // Levenshtein distance for "did you mean"
	maxListed   = 10  // agents named in a ResolveAssignee error
	ellipsis    = "…"
	commandList = "#note, #status, #resolve, #assign, #category, #priority"
)

// Values the commands accept, in the order error messages list them. They match
// threads.Statuses (without "suspended", which only filing sets), threads.Categories and
// threads.Priorities. Do not modify them.
var (
	StatusValues   = []string{"open", "pending", "resolved"}
	CategoryValues = []string{"billing", "technical", "account", "feature", "other"}
	PriorityValues = []string{"low", "normal", "high", "urgent"}
)

// Names of the commands that appear in Result.Commands. #resolve is reported as
// Command{Name: "status", Arg: "resolved"}; #note is not a Command but Result.Note.
const (
	NameStatus   = "status"
	NameAssign   = "assign"
	NameCategory = "category"
	NamePriority = "priority"
)

// names are the command names an agent can write, for lookups and suggestions.
var names = []string{"note", "status", "resolve", "assign", "category", "priority"}

// hints suggest a command for a word that is not a misspelling of one.
var hints = map[string]string{
	"close": "resolve", "closed": "resolve", "done": "resolve", "solve": "resolve", "solved": "resolve",
	"reopen": "status open", "internal": "note", "private": "note", "comment": "note",
	"prio": "priority", "cat": "category", "assignee": "assign", "assignto": "assign",
}

// Command is one command line. Name is one of NameStatus, NameAssign, NameCategory,
// NamePriority. Arg is the value: lower case for status, category and priority (one of
// the *Values); for assign the agent as written, spaces collapsed ("me", an address or a
// name: see ResolveAssignee). Line is its line number in the text given to Parse.
type Command struct {
	Name string
	Arg  string
	Line int
}

// LineError says what is wrong with one line of the command block.
type LineError struct {
	Line int    // line number in the text given to Parse
	Text string // the line, without surrounding white space, cut to 200 bytes
	Msg  string // what is wrong, e.g. "unknown command #staus (did you mean #status?)"
}

// Error formats the error for the agent: `line 1: "#staus pending": unknown command ...`.
func (e LineError) Error() string {
	return fmt.Sprintf("line %d: %q: %s", e.Line, e.Text, e.Msg)
}

// Result is what Parse found.
type Result struct {
	// Commands in the order written. Repeating a command with the same value is
	// harmless (both are listed); a different value for the same command is an error.
	Commands []Command
	// Note is the internal note: the rest of the #note line and every line after it,
	// without surrounding white space. HasNote tells an empty #note from none; NoteLine
	// is the line of #note (0 without one).
	Note     string
	HasNote  bool
	NoteLine int
	// Reply is the text to relay to the customer: the suffix of the text that starts at
	// the first non-blank line after the command block (see the package comment). It is
	// "" when the text holds nothing but commands and blank lines, and always "" with a
	// #note.
	Reply string
	// Errors, one per bad line, in line order. When there are any, the caller applies no
	// command, relays nothing and tells the agent.
	Errors []LineError
}

// OK reports whether the command block had no error.
func (r Result) OK() bool { return len(r.Errors) == 0 }

// Parse splits an agent's reply text into commands, note and reply. It never fails: what
// is wrong is in Result.Errors. It runs in time linear in len(text).
func Parse(text string) Result {
	var r Result
	first := map[string]int{} // command name -> index in r.Commands of its first use
	n, line := 0, 0
	for pos := 0; pos < len(text); {
		end, next := len(text), len(text)
		if i := strings.IndexByte(text[pos:], '\n'); i >= 0 {
			end, next = pos+i, pos+i+1
		}
		line++
		body := trimSpace(text[pos:end])
		if body == "" {
			pos = next
			continue
		}
		if body[0] != '#' {
			r.Reply = text[pos:]
			break
		}
		n++
		if n > MaxCommandLines {
			if n == MaxCommandLines+1 {
				r.addError(line, body, fmt.Sprintf("too many command lines (more than %d): nothing was read after line %d", MaxCommandLines, line-1))
			}
			pos = next
			continue
		}
		name, rest := splitCommand(body)
		if name == "note" {
			r.HasNote, r.NoteLine = true, line
			if rest == "" {
				r.Note = trimSpace(text[next:])
			} else {
				r.Note = trimSpace(rest + "\n" + text[next:])
			}
			r.Reply = ""
			return r
		}
		c, msg := parseCommand(name, rest)
		if msg == "" {
			if i, ok := first[c.Name]; ok && !strings.EqualFold(r.Commands[i].Arg, c.Arg) {
				p := r.Commands[i]
				msg = fmt.Sprintf("#%s %s conflicts with line %d (#%s %s)", c.Name, c.Arg, p.Line, p.Name, p.Arg)
			}
		}
		if msg != "" {
			r.addError(line, body, msg)
		} else {
			c.Line = line
			if _, ok := first[c.Name]; !ok {
				first[c.Name] = len(r.Commands)
			}
			r.Commands = append(r.Commands, c)
		}
		pos = next
	}
	return r
}

func (r *Result) addError(line int, text, msg string) {
	r.Errors = append(r.Errors, LineError{Line: line, Text: cut(text, maxErrText), Msg: msg})
}

// splitCommand splits a trimmed line that starts with '#' into the lower-case command
// name and the rest: "#Status: pending." gives "status", "pending.". The name ends at
// white space or ':'; trailing dots are not part of it.
func splitCommand(body string) (name, rest string) {
	s := body[1:]
	i := strings.IndexFunc(s, func(r rune) bool { return r == ':' || isSpace(r) })
	if i < 0 {
		i = len(s)
	}
	word, rest := s[:i], trimSpace(s[i:])
	if strings.HasPrefix(rest, ":") {
		rest = trimSpace(rest[1:])
	}
	word = strings.TrimRight(word, ".")
	if len(word) > maxNameLen {
		// Not a command and not close to one: keep the original (cut) for the message,
		// marked so that no lookup matches it.
		return "\x00" + cut(word, maxNameLen), rest
	}
	return strings.ToLower(word), rest
}

// parseCommand checks one command (not #note) and returns it or what is wrong.
func parseCommand(name, rest string) (Command, string) {
	arg := strings.TrimRightFunc(rest, func(r rune) bool { return r == '.' || r == ':' || isSpace(r) })
	switch name {
	case "resolve":
		if arg != "" {
			return Command{}, fmt.Sprintf("#resolve takes no value (%q); for another status write #status %s", cut(arg, 40), strings.Join(StatusValues, "|"))
		}
		return Command{Name: NameStatus, Arg: "resolved"}, ""
	case "status":
		return oneValue(NameStatus, arg, StatusValues)
	case "category":
		return oneValue(NameCategory, arg, CategoryValues)
	case "priority":
		return oneValue(NamePriority, arg, PriorityValues)
	case "assign":
		arg = strings.Join(strings.Fields(arg), " ")
		switch {
		case arg == "":
			return Command{}, "#assign needs an agent: an address, a name, or me"
		case len(arg) > maxArgLen:
			return Command{}, fmt.Sprintf("#assign: %q is too long for an agent", cut(arg, 40))
		}
		return Command{Name: NameAssign, Arg: arg}, ""
	}
	return Command{}, unknown(name)
}

// oneValue checks a command that takes exactly one of values.
func oneValue(name, arg string, values []string) (Command, string) {
	list := strings.Join(values, ", ")
	if arg == "" {
		return Command{}, fmt.Sprintf("#%s needs a value: %s", name, list)
	}
	if len(arg) > maxArgLen {
		return Command{}, fmt.Sprintf("#%s: %q is not one of %s", name, cut(arg, 40), list)
	}
	if len(strings.FieldsFunc(arg, isSpace)) > 1 {
		return Command{}, fmt.Sprintf("#%s takes one value (%s), not %q", name, list, cut(arg, 40))
	}
	v := strings.ToLower(arg)
	for _, x := range values {
		if v == x {
			return Command{Name: name, Arg: x}, ""
		}
	}
	msg := fmt.Sprintf("#%s: '%s' is not one of %s", name, cut(arg, 40), list)
	if s := suggest(v, values); s != "" {
		msg += " (did you mean " + s + "?)"
	}
	return Command{}, msg
}

// unknown describes a '#' line whose name is not a command.
func unknown(name string) string {
	word := strings.TrimPrefix(name, "\x00")
	if word == "" {
		return "'#' without a command (commands: " + commandList + "; a '#' line at the top is read as a command: to begin the reply with '#', put another line first)"
	}
	if s := suggest(name, names); s != "" {
		return fmt.Sprintf("unknown command #%s (did you mean #%s?)", word, s)
	}
	if h, ok := hints[name]; ok {
		return fmt.Sprintf("unknown command #%s (did you mean #%s?)", word, h)
	}
	msg := "unknown command #" + word + " (commands: " + commandList
	if r, _ := utf8.DecodeRuneInString(word); !unicode.IsLetter(r) {
		msg += "; a '#' line at the top is read as a command: to begin the reply with '#', put another line first"
	}
	return msg + ")"
}

// suggest returns the candidate closest to word within maxSuggest edits (the first of
// equally close ones), or "".
func suggest(word string, candidates []string) string {
	if word == "" || strings.HasPrefix(word, "\x00") || utf8.RuneCountInString(word) > maxNameLen {
		return ""
	}
	best, bestD := "", maxSuggest+1
	for _, c := range candidates {
		if d := levenshtein(word, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// levenshtein is the edit distance between a and b in runes. Callers keep both short.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// isSpace is white space for the grammar: unicode.IsSpace, a BOM and a zero-width space.
func isSpace(r rune) bool {
	return unicode.IsSpace(r) || r == '\uFEFF' || r == '\u200B'
}

// trimSpace trims isSpace from both ends of s, with a fast path for ASCII.
func trimSpace(s string) string {
	for len(s) > 0 && asciiSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && asciiSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && (s[0] >= utf8.RuneSelf || s[len(s)-1] >= utf8.RuneSelf) {
		return strings.TrimFunc(s, isSpace)
	}
	return s
}

func asciiSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\r' || b == '\n' || b == '\v' || b == '\f'
}

// cut shortens s to at most max bytes on a rune boundary, marking the cut with "…".
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + ellipsis
}

// Agent is an agent #assign can name: a configured [[agent]] (SPEC §8).
type Agent struct {
	Email string
	Name  string
}

// ResolveAssignee turns the value of #assign into an agent's address. me is the address
// of the agent who wrote the command. It accepts, case-insensitively:
//
//   - "me": returns me;
//   - an address ("ana@example.com", also "<ana@example.com>" or "Ana <ana@example.com>"):
//     the agent with exactly that address;
//   - a name: the one agent whose full name matches ("Ana Lopez"), else the one whose
//     first name matches ("Ana"), else the one whose address's local part matches
//     ("ana", for agents configured without a name).
//
// It returns the address as configured in agents. Anything else, or a name more than
// one agent matches at the first level where any matches, is an error whose text names
// the known agents, ready for the mail that tells the agent what was wrong.
func ResolveAssignee(arg string, me string, agents []Agent) (email string, err error) {
	a := strings.Join(strings.Fields(strings.TrimRight(trimSpace(arg), ".:")), " ")
	if i := strings.LastIndexByte(a, '<'); i >= 0 && strings.HasSuffix(a, ">") {
		a = trimSpace(a[i+1 : len(a)-1])
	}
	switch {
	case a == "":
		return "", fmt.Errorf("#assign needs an agent: an address, a name, or me (agents: %s)", listAgents(agents))
	case strings.EqualFold(a, "me"):
		if me == "" {
			return "", fmt.Errorf("#assign me: the sender is not a known agent")
		}
		return me, nil
	case strings.Contains(a, "@"):
		for _, ag := range agents {
			if strings.EqualFold(trimSpace(ag.Email), a) {
				return ag.Email, nil
			}
		}
		return "", fmt.Errorf("#assign: %s is not an agent (agents: %s)", cut(a, 80), listAgents(agents))
	}
	levels := []func(Agent) string{
		func(ag Agent) string { return strings.Join(strings.Fields(ag.Name), " ") },
		func(ag Agent) string {
			if f := strings.Fields(ag.Name); len(f) > 1 {
				return f[0]
			}
			return ""
		},
		func(ag Agent) string {
			if i := strings.LastIndexByte(ag.Email, '@'); i > 0 {
				return ag.Email[:i]
			}
			return ""
		},
	}
	for _, key := range levels {
		var found []Agent
		for _, ag := range agents {
			if k := key(ag); k != "" && strings.EqualFold(k, a) {
				found = append(found, ag)
			}
		}
		switch {
		case len(found) == 1:
			return found[0].Email, nil
		case len(found) > 1:
			return "", fmt.Errorf("#assign: %q could be %s: write the address", cut(a, 80), listAgents(found))
		}
	}
	return "", fmt.Errorf("#assign: no agent is called %q (agents: %s)", cut(a, 80), listAgents(agents))
}

// listAgents names agents for an error message: "Ana Lopez <ana@example.com>, ...".
func listAgents(agents []Agent) string {
	if len(agents) == 0 {
		return "none configured"
	}
	var b strings.Builder
	for i, ag := range agents {
		if i == maxListed {
			fmt.Fprintf(&b, " and %d more", len(agents)-maxListed)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		if n := strings.Join(strings.Fields(ag.Name), " "); n != "" {
			b.WriteString(n + " <" + ag.Email + ">")
		} else {
			b.WriteString(ag.Email)
		}
	}
	return b.String()
}

package quote

import "strings"

// result builds the Result from the plan: New is the commands and the kept lines before
// the signature (trailing quotes removed when there is text), Signature the lines from the
// signature to the cut, Quoted everything else.
func (p *plan) result(lines []string) Result {
	// New ends at the signature, before trailing blank lines and, when there is text,
	// trailing quotes.
	text := false
	for i := p.body; i < p.sig; i++ {
		if c := p.cls[i]; !p.drop[i] && c != cEmpty && c != cQuote {
			text = true
			break
		}
	}
	end := p.sig
	for end > p.body && (p.drop[end-1] || p.cls[end-1] == cEmpty || text && p.cls[end-1] == cQuote) {
		end--
	}
	r := Result{Forwarded: p.forwarded, Marker: p.marker}
	if r.Marker == "" && hasQuote(p.cls, p.drop, end, p.sig) {
		r.Marker = markerName(cQuote)
	}
	inNew := func(i int) bool { return i >= p.body && i < end && !p.drop[i] }
	r.New = joinNew(lines[:p.body], lines, p.body, end, inNew)
	r.Signature = joinLines(lines, p.sig, p.cut, func(int) bool { return true })
	r.Quoted = joinLines(lines, p.body, len(lines), func(i int) bool {
		return !inNew(i) && (i < p.sig || i >= p.cut)
	})
	return r
}

// joinNew joins the command lines (untouched) and the new text, with a blank line between
// them when the message had one.
func joinNew(commands, lines []string, from, to int, keep func(int) bool) string {
	body := joinLines(lines, from, to, keep)
	cmds := joinLines(commands, 0, len(commands), func(int) bool { return true })
	switch {
	case cmds == "":
		return body
	case body == "":
		return cmds
	case from < len(lines) && keep(from) && !isBlank(lines[from]):
		return cmds + "\n" + body
	}
	return cmds + "\n\n" + body
}

// joinLines joins the lines in [from, to) that keep accepts, without blank lines at
// either end.
func joinLines(lines []string, from, to int, keep func(int) bool) string {
	first, last := -1, -1
	for i := from; i < to; i++ {
		if keep(i) && !isBlank(lines[i]) {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return ""
	}
	var b strings.Builder
	sep := false
	for i := first; i <= last; i++ {
		if !keep(i) {
			continue
		}
		if sep {
			b.WriteByte('\n')
		}
		b.WriteString(lines[i])
		sep = true
	}
	return b.String()
}

// hasQuote reports whether a line in [from, to) not dropped is a quote.
func hasQuote(cls []class, drop []bool, from, to int) bool {
	for i := from; i < to; i++ {
		if cls[i] == cQuote && !drop[i] {
			return true
		}
	}
	return false
}

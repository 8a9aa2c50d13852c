package quote

import "strings"

// result builds the Result from the plan: New is the commands and the kept lines before
// the signature (trailing quotes removed when there is text), Signature the lines from the
// signature to the cut, Quoted everything else.
func (p *plan) result(ls *lineSet) Result {
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
	all := func(int) bool { return true }
	inNew := func(i int) bool { return i >= p.body && i < end && !p.drop[i] }
	commands := joinLines(ls, 0, p.body, all)
	r.New = joinLines(ls, p.body, end, inNew)
	switch {
	case commands == "":
	case r.New == "":
		r.New = commands
	case p.body < ls.n() && inNew(p.body) && !isBlank(ls.at(p.body)):
		r.New = commands + "\n" + r.New
	default:
		r.New = commands + "\n\n" + r.New // the message had a blank line (or more) there
	}
	r.Signature = joinLines(ls, p.sig, p.cut, all)
	r.Quoted = joinLines(ls, p.body, ls.n(), func(i int) bool {
		return !inNew(i) && (i < p.sig || i >= p.cut)
	})
	return r
}

// joinLines joins the lines in [from, to) that keep accepts, without blank lines at
// either end.
func joinLines(ls *lineSet, from, to int, keep func(int) bool) string {
	first, last := -1, -1
	for i := from; i < to; i++ {
		if !keep(i) || isBlank(ls.at(i)) {
			continue
		}
		if first < 0 {
			first = i
		}
		last = i
	}
	if first < 0 {
		return ""
	}
	var b strings.Builder
	b.Grow(ls.end(last) - int(ls.start[first]))
	sep := false
	for i := first; i <= last; i++ {
		if !keep(i) {
			continue
		}
		if sep {
			b.WriteByte('\n')
		}
		b.WriteString(ls.at(i))
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

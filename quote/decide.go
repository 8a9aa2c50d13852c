package quote

import "strings"

// plan says which lines of a reply are new, quoted or signature.
type plan struct {
	cls       []class
	body      int    // first line after the agent commands
	cut       int    // first line of the trailing quoted history; len(cls) when none
	sig       int    // first line of the signature; == end of the new text when none
	drop      []bool // lines before cut removed as quoted (attributions, a top quote)
	forwarded bool
	marker    string
}

// decide walks the classes and places the cut and the signature.
func decide(ls *lineSet, cls []class) *plan {
	p := &plan{cls: cls, cut: len(cls), drop: make([]bool, len(cls))}
	for p.body < len(cls) && cls[p.body] == cCommand {
		p.body++
	}
	topQuote := p.markers()
	p.resolveTopQuote(topQuote)
	p.quoteOnly(ls)
	p.signature()
	return p
}

// span is a half-open range of lines.
type span struct{ from, to int }

// markers handles each attribution, original-message, forward marker or header block
// in turn. A marker at the top is dropped (with the quote right below it, see
// resolveTopQuote); a marker below new text cuts the rest, unless the quote below it is
// answered inline: text (not a signature) follows the quote.
func (p *plan) markers() (topQuote span) {
	cls, n := p.cls, len(p.cls)
	seen := false // new text (or a signature) came before
	for i := p.body; i < n; {
		c := cls[i]
		if !isMarker(c) {
			if c != cEmpty && c != cQuote {
				seen = true
			}
			i++
			continue
		}
		j, kind := p.unit(i)
		k := p.skip(j, cEmpty)
		if !seen {
			p.dropRange(i, j)
			p.note(kind, true)
			if k < n && cls[k] == cQuote {
				q := p.skipQuote(k)
				topQuote = span{k, q}
				i = q
				continue
			}
			i = j
			continue
		}
		if k < n && cls[k] == cQuote {
			if m := p.skipQuote(k); m < n && cls[m] == cText {
				p.dropRange(i, j)
				i = m
				continue
			}
		}
		p.cut = p.backOverSeparators(i)
		p.note(kind, false)
		return topQuote
	}
	return topQuote
}

// unit returns the end of the marker unit starting at i (markers with blank lines
// between them: "-----Original Message-----\nFrom: …") and what kind it is.
func (p *plan) unit(i int) (int, class) {
	kind := p.cls[i]
	j := i
	for k := i; k < len(p.cls); k++ {
		c := p.cls[k]
		if isMarker(c) {
			if c == cFwd {
				kind = cFwd
			}
			j = k + 1
			continue
		}
		if c != cEmpty {
			break
		}
	}
	return j, kind
}

// skip returns the first line at or after i that is not of class c.
func (p *plan) skip(i int, c class) int {
	for i < len(p.cls) && p.cls[i] == c {
		i++
	}
	return i
}

// skipQuote returns the end of the quote starting at i: quoted, blank and marker lines.
func (p *plan) skipQuote(i int) int {
	for i < len(p.cls) && (p.cls[i] == cQuote || p.cls[i] == cEmpty || isMarker(p.cls[i])) {
		i++
	}
	return i
}

// backOverSeparators moves a cut back over the blank and delimiter lines right above it
// ("________________\nFrom: …"), which belong to the quote.
func (p *plan) backOverSeparators(i int) int {
	for i > p.body && (p.cls[i-1] == cEmpty || p.cls[i-1] == cDelim) {
		i--
	}
	return i
}

// resolveTopQuote drops the quote below a top attribution when the reply follows it in
// one piece (no more quote before the cut).
func (p *plan) resolveTopQuote(q span) {
	if q.to <= q.from {
		return
	}
	for i := q.to; i < p.cut; i++ {
		if p.cls[i] == cQuote && !p.drop[i] {
			return
		}
	}
	p.dropRange(q.from, q.to)
}

// quoteOnly handles a reply that is nothing but quote: it stays new text (it may be all the
// sender wrote) unless it starts with an attribution, as a bare forward of a quote does.
func (p *plan) quoteOnly(ls *lineSet) {
	first := -1
	for i := p.body; i < p.cut; i++ {
		switch p.cls[i] {
		case cEmpty:
		case cQuote:
			if first < 0 && !p.drop[i] {
				first = i
			}
		default:
			if !p.drop[i] {
				return
			}
		}
	}
	if first < 0 {
		return
	}
	t := trimBlank(strings.TrimLeft(trimBlank(ls.at(first)), "> "))
	if markerClass(t) != cText {
		p.cut = first
		p.note(cAttr, false)
	}
}

// signature places the signature: at the first "-- " line, or at a long delimiter line
// followed by at most maxSigLines lines, and back over trailing "Sent from my iPhone"
// lines.
func (p *plan) signature() {
	cls := p.cls
	end := p.cut
	p.sig = end
	lastQuote, text := -1, false
	for i := p.body; i < end; i++ {
		if cls[i] == cQuote && !p.drop[i] {
			lastQuote = i
		}
	}
	limit := end // a delimiter at or after limit has few enough lines below it
	for count := 0; limit > p.body; limit-- {
		if cls[limit-1] != cEmpty {
			if count++; count > maxSigLines {
				break
			}
		}
	}
	for i := p.body; i < end; i++ {
		if p.drop[i] {
			continue
		}
		switch cls[i] {
		case cText:
			text = true
		case cSigDash:
			p.sig = i
		case cDelim:
			if text && i >= limit && i > lastQuote {
				p.sig = i
			}
		}
		if p.sig < end {
			break
		}
	}
	k := p.sig
	for k > p.body && (cls[k-1] == cEmpty || cls[k-1] == cMobile || p.drop[k-1]) {
		k--
	}
	for ; k < p.sig; k++ {
		if cls[k] == cMobile && !p.drop[k] {
			p.sig = k
			break
		}
	}
}

func (p *plan) dropRange(from, to int) {
	for i := from; i < to; i++ {
		p.drop[i] = true
	}
}

// note records the first marker kind seen; a header block at the top is a forward.
func (p *plan) note(c class, top bool) {
	if c == cFwd || c == cHeader && top {
		p.forwarded = true
	}
	if p.marker == "" {
		p.marker = markerName(c)
	}
}

func markerName(c class) string {
	switch c {
	case cAttr:
		return "attribution"
	case cOrig:
		return "original message"
	case cFwd:
		return "forward"
	case cHeader:
		return "header block"
	case cQuote:
		return "quote"
	}
	return ""
}

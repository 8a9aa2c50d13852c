package quote

import (
	"strings"
	"unicode/utf8"
)

// class is what one line of a reply is.
type class uint8

const (
	cEmpty   class = iota // blank
	cText                 // anything else
	cQuote                // "> quoted" (or Supercite "AB> quoted")
	cAttr                 // attribution: "On … wrote:", possibly wrapped over several lines
	cOrig                 // "-----Original Message-----" and its translations
	cFwd                  // forward marker: "---------- Forwarded message ---------"
	cHeader               // a line of an Outlook From:/Sent:/To:/Subject: block
	cSigDash              // "-- ", the signature delimiter
	cDelim                // a long delimiter line: "________", "-----", "======"
	cMobile               // "Sent from my iPhone" and the like
	cCommand              // an agent command line ("#resolve") at the top, or a blank among them
)

// isMarker reports whether c starts the quoted history when it follows the new text.
func isMarker(c class) bool { return c >= cAttr && c <= cHeader }

// Limits that keep every per-line check cheap.
const (
	maxAttrLen   = 500 // an attribution longer than this (joined) is not one
	maxJoinLines = 5   // lines a wrapped attribution may continue over
	maxMobileLen = 110 // a "Sent from my …" line is short
	maxSigLines  = 10  // non-blank lines a delimiter-led signature may have
)

// classify gives each line its class.
func classify(ls *lineSet) []class {
	cls := make([]class, ls.n())
	start := commandBlock(ls, cls)
	code := codeLines(ls, start)
	for i := start; i < ls.n(); i++ {
		if code != nil && code[i] {
			cls[i] = cText
			continue
		}
		cls[i] = lineClass(ls.at(i))
	}
	joinAttributions(ls, cls, start, code)
	markHeaderBlocks(ls, cls, start, code)
	return cls
}

// commandBlock marks the agent commands at the top (lines starting with '#', and blank
// lines among them) and returns the index of the first line after them.
func commandBlock(ls *lineSet, cls []class) int {
	end := 0
	for i := 0; i < ls.n(); i++ {
		t := trimBlank(ls.at(i))
		if t == "" {
			continue
		}
		if t[0] != '#' {
			break
		}
		end = i + 1
	}
	for i := 0; i < end; i++ {
		cls[i] = cCommand
	}
	return end
}

// codeLines marks the lines inside ``` fences (fences included), which are text whatever
// they look like. A fence that is never closed is not one. Nil when there are none.
func codeLines(ls *lineSet, start int) []bool {
	var fences []int
	for i := start; i < ls.n(); i++ {
		if strings.HasPrefix(strings.TrimLeft(ls.at(i), " \t"), "```") {
			fences = append(fences, i)
		}
	}
	if len(fences) < 2 {
		return nil
	}
	code := make([]bool, ls.n())
	for k := 0; k+1 < len(fences); k += 2 {
		for i := fences[k]; i <= fences[k+1]; i++ {
			code[i] = true
		}
	}
	return code
}

// lineClass classifies one line on its own.
func lineClass(l string) class {
	t := trimBlank(l)
	switch {
	case t == "":
		return cEmpty
	case isQuoteLine(t):
		return cQuote
	case t == "--":
		return cSigDash
	}
	if isDelimiter(t) {
		if len(t) >= 4 || t == "ᐧ" {
			return cDelim
		}
		return cText
	}
	if isMobileSignature(t) {
		return cMobile
	}
	if c := markerClass(t); c != cText {
		return c
	}
	return cText
}

// isQuoteLine reports whether the (left-trimmed) line is quoted: "> …", or Supercite's
// "AB> …" with up to three capital letters.
func isQuoteLine(t string) bool {
	if t[0] == '>' {
		return true
	}
	i := 0
	for i < len(t) && i < 3 && t[i] >= 'A' && t[i] <= 'Z' {
		i++
	}
	if i == 0 || i >= len(t) || t[i] != '>' {
		return false
	}
	return i+1 == len(t) || t[i+1] == ' ' || t[i+1] == '>'
}

// isDelimiter reports whether t consists only of delimiter characters.
func isDelimiter(t string) bool {
	for _, r := range t {
		if !strings.ContainsRune("-_=+~#*,ᐧ—–", r) && r != ' ' && r != '\t' {
			return false
		}
	}
	return true
}

// markerClass recognises an attribution, an original-message or a forward marker in one
// line (or several joined ones); cText when it is none.
func markerClass(t string) class {
	if len(t) > maxAttrLen || len(t) < 4 || !mayBeMarker(t) {
		return cText
	}
	s := normalize(t)
	if c := originalMarker(s); c != cText {
		return c
	}
	if isAttribution(s, false) {
		return cAttr
	}
	return cText
}

// mayBeMarker is a cheap test that markerClass can be true: every marker ends with a
// colon, a '>', a dash or a star, starts with a digit, a dash or a star, or starts with
// an attribution's first word.
func mayBeMarker(t string) bool {
	switch t[len(t)-1] {
	case '-', '*', '>', ':':
		return true
	}
	if first := t[0]; isDigit(first) || first == '-' || first == '*' || strings.HasSuffix(t, "：") {
		return true
	}
	end := 0
	for end < len(t) && end <= 4 && t[end] != ' ' && t[end] != ',' {
		end++
	}
	if end > 4 { // every lead is at most four bytes long
		return false
	}
	for _, w := range attrLeads {
		if strings.EqualFold(t[:end], w) {
			return true
		}
	}
	return false
}

// normalize lowercases s and turns non-breaking spaces and tabs into single spaces.
func normalize(s string) string {
	s = strings.ToLower(s)
	if strings.ContainsAny(s, "\u00a0\u202f\t") {
		s = strings.NewReplacer("\u00a0", " ", "\u202f", " ", "\t", " ").Replace(s)
	}
	if strings.Contains(s, "  ") {
		s = strings.Join(strings.Fields(s), " ")
	}
	return strings.TrimSpace(s)
}

// trimBlank trims spaces, tabs, stray CRs, no-break spaces and BOMs from both ends.
func trimBlank(s string) string {
	for len(s) > 0 {
		if isASCIIBlank(s[0]) {
			s = s[1:]
		} else if n := blankRuneLen(s); n > 0 {
			s = s[n:]
		} else {
			break
		}
	}
	for len(s) > 0 {
		if isASCIIBlank(s[len(s)-1]) {
			s = s[:len(s)-1]
		} else if n := blankRuneLenLast(s); n > 0 {
			s = s[:len(s)-n]
		} else {
			break
		}
	}
	return s
}

func isASCIIBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' }

// blanks are the non-ASCII blanks trimmed: no-break space, narrow no-break space, BOM.
var blanks = [...]string{"\u00a0", "\u202f", "\ufeff"}

// blankRuneLen returns the length of the non-ASCII blank s starts with, or 0.
func blankRuneLen(s string) int {
	if s[0] < utf8.RuneSelf {
		return 0
	}
	for _, b := range blanks {
		if strings.HasPrefix(s, b) {
			return len(b)
		}
	}
	return 0
}

// blankRuneLenLast returns the length of the non-ASCII blank s ends with, or 0.
func blankRuneLenLast(s string) int {
	if s[len(s)-1] < utf8.RuneSelf {
		return 0
	}
	for _, b := range blanks {
		if strings.HasSuffix(s, b) {
			return len(b)
		}
	}
	return 0
}

// isBlank reports whether s has nothing but blanks.
func isBlank(s string) bool { return trimBlank(s) == "" }

// hasDigit reports whether s has an ASCII digit.
func hasDigit(s string) bool { return strings.ContainsAny(s, "0123456789") }

package quote

import "strings"

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
func classify(lines []string) []class {
	cls := make([]class, len(lines))
	start := commandBlock(lines, cls)
	code := codeLines(lines, start)
	for i := start; i < len(lines); i++ {
		if code != nil && code[i] {
			cls[i] = cText
			continue
		}
		cls[i] = lineClass(lines[i])
	}
	joinAttributions(lines, cls, start, code)
	markHeaderBlocks(lines, cls, start, code)
	return cls
}

// commandBlock marks the agent commands at the top (lines starting with '#', and blank
// lines among them) and returns the index of the first line after them.
func commandBlock(lines []string, cls []class) int {
	end := 0
	for i, l := range lines {
		t := strings.TrimLeft(l, " \t")
		if t == "" || isBlank(t) {
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
func codeLines(lines []string, start int) []bool {
	var fences []int
	for i := start; i < len(lines); i++ {
		if strings.HasPrefix(strings.TrimLeft(lines[i], " \t"), "```") {
			fences = append(fences, i)
		}
	}
	if len(fences) < 2 {
		return nil
	}
	code := make([]bool, len(lines))
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
	if len(t) > maxAttrLen || len(t) < 4 {
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

// trimBlank trims spaces, tabs and non-breaking spaces from both ends.
func trimBlank(s string) string { return strings.Trim(s, " \t\u00a0\u202f\ufeff") }

// isBlank reports whether s has nothing but blanks.
func isBlank(s string) bool { return trimBlank(s) == "" }

// hasDigit reports whether s has an ASCII digit.
func hasDigit(s string) bool { return strings.ContainsAny(s, "0123456789") }

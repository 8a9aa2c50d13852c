package quote

import (
	"strings"
	"unicode/utf8"
)

// Phrases of "-----Original Message-----" lines, lowercase, as clients write them in
// en, es, pt, fr, de, it, nl, sv, no, da, pl, ru, zh.
var originalPhrases = []string{
	"original message", "mensaje original", "mensagem original", "ursprüngliche nachricht",
	"message d'origine", "message d’origine", "message original", "messaggio originale",
	"oorspronkelijk bericht", "originalmeddelande", "opprinnelig melding",
	"original meddelelse", "wiadomość oryginalna", "исходное сообщение", "原始邮件",
	"reply message",
}

// Phrases of forward markers: "---------- Forwarded message ---------" and
// "Begin forwarded message:" forms.
var forwardPhrases = []string{
	"forwarded message", "mensaje reenviado", "mensaje enviado", "mensagem encaminhada",
	"mensagem reencaminhada", "weitergeleitete nachricht", "message transféré",
	"messaggio inoltrato", "doorgestuurd bericht", "vidarebefordrat meddelande",
	"videresendt melding", "videresendt meddelelse", "przekazana wiadomość",
	"пересылаемое сообщение", "转发邮件", "forwarded e-mail",
	"begin forwarded message", "début du message réexpédié", "début du message transféré",
	"inicio del mensaje reenviado", "comienzo del mensaje reenviado",
	"início da mensagem reencaminhada", "início da mensagem encaminhada",
	"anfang der weitergeleiteten nachricht", "inizio messaggio inoltrato",
}

// originalMarker recognises (normalized) "----- Original Message -----",
// "*-------- Mensaje original --------*", "Begin forwarded message:" and the like.
func originalMarker(s string) class {
	core := strings.Trim(s, " *_=")
	dashed := strings.HasPrefix(core, "--") && strings.HasSuffix(core, "--")
	core = strings.Trim(core, " -*_=>")
	colon := strings.HasSuffix(core, ":")
	core = strings.TrimSpace(strings.TrimSuffix(core, ":"))
	if !dashed && !colon {
		return cText
	}
	for _, p := range forwardPhrases {
		if core == p {
			return cFwd
		}
	}
	if !dashed {
		return cText
	}
	for _, p := range originalPhrases {
		if core == p {
			return cOrig
		}
	}
	return cText
}

// Words an attribution starts with ("On …", "Le …", "El …", "Em …", "Am …", "Op …").
var attrLeads = []string{
	"on", "at", "le", "el", "em", "am", "op", "il", "dnia", "dňa", "w", "den", "på", "в",
	"在",
}

// Verbs an attribution ends with ("… wrote:", "… escribió:", "… a écrit :").
var attrVerbs = []string{
	"wrote", "a écrit", "nous a dit", "escribió", "escribio",
	"escreveu", "schrieb", "geschrieben", "schrieben sie", "schreef", "ha scritto",
	"napisał", "napisał(a)", "napisała", "napsal", "napsal(a)", "skrev", "kirjoitti",
	"написал", "написала", "написал(а)", "пише", "写道", "寫道", "írta", "yazdı",
}

// Verbs an attribution may end with only when a colon follows ("On …, Bob said:").
var attrWeakVerbs = []string{"writes", "said", "says"}

// Verbs that may stand before the sender's name ("Am … schrieb Max <max@…>:").
var attrMidVerbs = []string{
	" schrieb ", " schreef ", " skrev ", " wrote ", " escribió ", " escreveu ",
	" a écrit ", " ha scritto ", " napisał ",
}

// "Max <max@…> schrieb am Fr., 28. Apr. 2017 um 11:53 Uhr:"
var attrVerbOnDate = []string{
	" wrote on ", " schrieb am ", " escribió el ", " a écrit le ", " escreveu em ",
	" schreef op ", " ha scritto il ", " skrev den ",
}

// isAttribution recognises the line a mail client puts above the message it quotes, in
// its many forms and languages. s is normalized; wrapped attributions (joined from
// several lines) must end with a colon.
func isAttribution(s string, wrapped bool) bool {
	end := strings.TrimRight(s, " -*>")
	colon := strings.HasSuffix(end, ":") || strings.HasSuffix(end, "：")
	if wrapped && !colon {
		return false
	}
	u := strings.TrimLeft(s, " -*>")
	u = strings.TrimRight(u, " -*>.:：")
	if u == "" {
		return false
	}
	digit := hasDigit(u)
	lead := startsWithWord(u, attrLeads)
	verb := endsWithWord(u, attrVerbs) || colon && endsWithWord(u, attrWeakVerbs)
	switch {
	case lead && verb && digit:
		// On Tue, 2011-03-01 at 18:02 +0530, Some One wrote:
		return true
	case lead && colon && digit && containsAny(u, attrMidVerbs):
		// Am 18.09.2013 um 16:24 schrieb codinghorror <info@discourse.org>:
		return true
	case verb && colon && (strings.Contains(u, "@") || strings.Contains(u, " via ") ||
		strings.Contains(u, "пользователь")):
		// Some One <info@discourse.org> wrote:
		return true
	case colon && digit && containsAny(u, attrVerbOnDate):
		return true
	}
	return dateAndAddress(strings.TrimRight(s, " :：")) || isoDateSender(u, colon)
}

// dateAndAddress recognises "2013/7/20 sam <sam@example.com>", "26.06.2014, 14:41,
// "Alexander" <a@example.com>" and "Thu, 26 Jun 2014 14:00:51 +0400 от Alexander
// <a@example.com>": a date, then an address in angle brackets that ends the line.
func dateAndAddress(u string) bool {
	if !strings.HasSuffix(u, ">") {
		return false
	}
	lt := strings.LastIndexByte(u, '<')
	if lt < 0 {
		return false
	}
	addr := strings.TrimPrefix(strings.TrimSpace(u[lt+1:len(u)-1]), "mailto:")
	if !strings.Contains(addr, "@") || strings.ContainsAny(addr, " <") {
		return false
	}
	before := u[:lt]
	return hasYear(before) && digitGroups(before) >= 3
}

// isoDateSender recognises "2016-03-03 17:21 GMT+01:00 Some One".
func isoDateSender(u string, colon bool) bool {
	if len(u) < 16 || !isDigits(u[:4]) || (u[4] != '-' && u[4] != '/') {
		return false
	}
	return digitGroups(u[:16]) >= 5 && (strings.Contains(u, "gmt") || strings.Contains(u, "@") || colon)
}

// startsWithWord reports whether s starts with one of words followed by a space or a
// comma (or, for a CJK word, by anything).
func startsWithWord(s string, words []string) bool {
	for _, w := range words {
		if !strings.HasPrefix(s, w) {
			continue
		}
		if len(s) == len(w) {
			return true
		}
		if c := s[len(w)]; c == ' ' || c == ',' || isCJK(w) {
			return true
		}
	}
	return false
}

// endsWithWord reports whether s ends with one of words, preceded by a space (or, for a
// CJK word, by anything).
func endsWithWord(s string, words []string) bool {
	for _, w := range words {
		if !strings.HasSuffix(s, w) {
			continue
		}
		if len(s) == len(w) {
			return true
		}
		r, _ := utf8.DecodeLastRuneInString(s[:len(s)-len(w)])
		if r == ' ' || r == '"' || r == '\'' || isCJK(w) {
			return true
		}
	}
	return false
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// hasYear reports whether s has a run of exactly four digits starting with 19 or 20.
func hasYear(s string) bool {
	for i := 0; i+4 <= len(s); i++ {
		if (s[i:i+2] == "19" || s[i:i+2] == "20") && isDigits(s[i:i+4]) &&
			(i == 0 || !isDigit(s[i-1])) && (i+4 == len(s) || !isDigit(s[i+4])) {
			return true
		}
	}
	return false
}

// digitGroups counts the runs of digits in s.
func digitGroups(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) && (i == 0 || !isDigit(s[i-1])) {
			n++
		}
	}
	return n
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

// isCJK reports whether w starts with a Han character (CJK text has no spaces).
func isCJK(w string) bool {
	r, _ := utf8.DecodeRuneInString(w)
	return r >= 0x3000 && r <= 0x9fff
}

// joinAttributions finds attributions that the client wrapped over several lines
// ("On Mon, Feb 1, 2016 at 6:32 PM, Jeff Atwood <info@discourse.org>\nwrote:") and marks
// all their lines. A wrapped attribution starts on a text line with a digit or an '@'
// and continues over at most maxJoinLines text or blank lines; the last may be a quoted
// "> wrote:". It never swallows a line that is a marker on its own.
func joinAttributions(ls *lineSet, cls []class, start int, code []bool) {
	for i := start; i < ls.n(); i++ {
		if cls[i] != cText || (code != nil && code[i]) {
			continue
		}
		t := trimBlank(ls.at(i))
		if len(t) > maxAttrLen/2 || !attributionStart(t) {
			continue
		}
		if end := wrappedAttribution(ls, cls, i, t, code); end > i {
			for k := i; k <= end; k++ {
				cls[k] = cAttr
			}
			i = end
		}
	}
}

// attributionStart reports whether t may be the first line of a wrapped attribution:
// "On <date>…", a date first, or a sender's name and address.
func attributionStart(t string) bool {
	if isDigit(t[0]) || strings.ContainsAny(t, "@<") {
		return true
	}
	s := strings.TrimLeft(t, " -*")
	if hasDigit(s) && s != "" && mayBeMarker(s) {
		return true
	}
	return strings.Contains(s, " via ") || strings.Contains(s, " Via ")
}

// wrappedAttribution returns the last line of the attribution that starts at line i with
// text t, or i when there is none.
func wrappedAttribution(ls *lineSet, cls []class, i int, t string, code []bool) int {
	var parts [maxJoinLines + 1]string
	parts[0] = t
	np, total := 1, len(t)
	for k := i + 1; k < ls.n() && k <= i+maxJoinLines; k++ {
		if code != nil && code[k] {
			return i
		}
		c := cls[k]
		next := trimBlank(ls.at(k))
		switch {
		case c == cEmpty:
			if prev := parts[np-1]; strings.ContainsAny(prev[len(prev)-1:], ".!?") {
				return i // a blank line after a sentence ends the attribution
			}
			continue
		case c == cText:
			if headerFamily(next) != 0 {
				return i
			}
		case c == cQuote:
			next = trimBlank(strings.TrimLeft(next, "> "))
			if next == "" || len(next) > 40 {
				return i
			}
		case c == cAttr && openAddress(strings.Join(parts[:np], " ")):
			// "… matt2 via Discourse Meta <" + "info@discourse.org> wrote:"
		default:
			return i
		}
		parts[np] = next
		np++
		if total += 1 + len(next); total > maxAttrLen {
			return i
		}
		// A wrapped attribution ends with a colon: only those are tested.
		if end := strings.TrimRight(next, " -*>"); (strings.HasSuffix(end, ":") || strings.HasSuffix(end, "：")) &&
			isAttribution(normalize(strings.Join(parts[:np], " ")), true) {
			return k
		}
		if c != cText {
			return i
		}
	}
	return i
}

// openAddress reports whether s ends inside an address in angle brackets ("Bob <").
func openAddress(s string) bool {
	return strings.LastIndexByte(s, '<') > strings.LastIndexByte(s, '>')
}

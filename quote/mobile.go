package quote

import (
	"strings"
	"unicode/utf8"
)

// Starts of the lines that mail apps add below the text ("Sent from my iPhone"), lowercase,
// in en, es, pt, fr, de, it, nl, sv, no, da, zh.
var mobilePrefixes = []string{
	"sent from ", "sent via ", "sent with ", "sent by ", "sent using ", "sent on my ",
	"get outlook for ", "enviado desde ", "obtener outlook para ", "enviado do meu ",
	"enviado de meu ", "enviado do ", "enviado a partir do ", "obter o outlook para ",
	"envoyé de mon ", "envoyé depuis ", "envoyé à partir de ", "télécharger outlook pour ",
	"von meinem ", "gesendet von ", "diese nachricht wurde von ", "outlook für ",
	"inviato da ", "inviato dal mio ", "scarica outlook per ", "verzonden met ",
	"verzonden vanaf ", "verstuurd vanaf ", "verstuurd met ", "skickat från ",
	"från min ", "sendt fra ", "hent outlook til ", "從我的 ", "发自我的", "來自我的",
}

// isMobileSignature reports whether the (trimmed) line is a mail app's "Sent from my
// iPhone", "Enviado desde mi iPhone", "Envoyé de mon iPhone", "Von meinem iPhone
// gesendet", "Get Outlook for iOS" and the like.
func isMobileSignature(t string) bool {
	if len(t) > maxMobileLen || len(t) < 8 || !mayBeMobile(t) {
		return false
	}
	s := strings.Trim(stripMarkdownLinks(t), " ()<>*_")
	if s == "" {
		return false
	}
	first := s[0] | 0x20 // ASCII lowercase; the prefixes are lowercase
	for _, p := range mobilePrefixes {
		if p[0] != first && p[0] < utf8.RuneSelf || len(s) < len(p) || !strings.EqualFold(s[:len(p)], p) {
			continue
		}
		if p == "von meinem " || p == "diese nachricht wurde von " {
			return strings.Contains(strings.ToLower(s), "gesendet")
		}
		return true
	}
	// "From my iPhone 6", "Someone from mobile"
	words := strings.Fields(s)
	if len(words) >= 3 && len(words) <= 5 && strings.EqualFold(words[0], "from") && strings.EqualFold(words[1], "my") {
		return true
	}
	return len(words) == 3 && strings.EqualFold(words[1], "from") && strings.EqualFold(words[2], "mobile")
}

// mayBeMobile is a cheap test that isMobileSignature can be true: the line starts with
// the first letter of a prefix, or has " from ".
func mayBeMobile(t string) bool {
	c := strings.TrimLeft(t, " (<*_[")
	if c == "" {
		return false
	}
	first := c[0] | 0x20 // ASCII lowercase
	return first >= utf8.RuneSelf || strings.IndexByte("sgeotvdifh", first) >= 0 ||
		strings.Contains(t, " from ")
}

// stripMarkdownLinks turns "[text](url)" into "text".
func stripMarkdownLinks(s string) string {
	if !strings.Contains(s, "](") {
		return s
	}
	var b strings.Builder
	for {
		open := strings.IndexByte(s, '[')
		if open < 0 {
			break
		}
		mid := strings.Index(s[open:], "](")
		if mid < 0 {
			break
		}
		mid += open
		end := strings.IndexByte(s[mid:], ')')
		if end < 0 {
			break
		}
		end += mid
		b.WriteString(s[:open])
		b.WriteString(s[open+1 : mid])
		s = s[end+1:]
	}
	b.WriteString(s)
	return b.String()
}

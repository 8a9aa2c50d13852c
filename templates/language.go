package templates

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/replydesk/replydesk/internal/words"
)

var categoryNames = map[string]map[string]string{
	"en": {"billing": "billing", "technical": "technical problem", "account": "account access", "feature": "suggestion", "other": "general question"},
	"es": {"billing": "facturación", "technical": "problema técnico", "account": "acceso a la cuenta", "feature": "sugerencia", "other": "consulta general"},
	"pt": {"billing": "cobrança", "technical": "problema técnico", "account": "acesso à conta", "feature": "sugestão", "other": "dúvida geral"},
}

// CategoryName is a category as a customer reads it in lang.
func CategoryName(lang, category string) string {
	if n, ok := categoryNames[lang][category]; ok {
		return n
	}
	return category
}

// Duration says a response time in lang: "24 hours", "2 días", "30 minutos".
func Duration(lang string, d time.Duration) string {
	unit := map[string][3]string{ // minute(s), hour(s), day(s) as plural forms
		"en": {"minutes", "hours", "days"}, "es": {"minutos", "horas", "días"}, "pt": {"minutos", "horas", "dias"},
	}[lang]
	if unit[0] == "" {
		unit = [3]string{"minutes", "hours", "days"}
	}
	switch h := d.Hours(); {
	case d < time.Hour:
		return fmt.Sprintf("%d %s", int(d.Minutes()), unit[0])
	case h <= 48 || int(h)%24 != 0:
		return fmt.Sprintf("%d %s", int(h), unit[1])
	default:
		return fmt.Sprintf("%d %s", int(h)/24, unit[2])
	}
}

// Size says a number of bytes in lang, in binary units as mail clients show them:
// "820 bytes", "120 KB", "2.3 MB" ("2,3 MB" in es and pt).
func Size(lang string, n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d bytes", n)
	}
	v, unit := float64(n)/1024, "KB"
	for _, u := range []string{"MB", "GB"} {
		if v < 1023.95 {
			break
		}
		v, unit = v/1024, u
	}
	s := fmt.Sprintf("%.0f", v)
	if v < 9.95 {
		s = strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0")
	}
	if lang == "es" || lang == "pt" {
		s = strings.Replace(s, ".", ",", 1)
	}
	return s + " " + unit
}

// Language picks the customer's language: a Content-Language header, then the language
// of their earlier tickets, then a light guess from the text, else the default.
func Language(contentLanguage, earlier, text, fallback string) string {
	for _, tag := range strings.Split(contentLanguage, ",") {
		if l := base(tag); supported(l) {
			return l
		}
	}
	if supported(earlier) {
		return earlier
	}
	if l := Detect(text); l != "" {
		return l
	}
	return fallback
}

// detectBytes is how much of the text Detect reads: about 250 words, where stopwords are
// a third of the words of any prose.
const detectBytes = 1500

// maxStopword is the longest stopword, in bytes.
const maxStopword = 8

// maxLowerShrink: lowering a letter shrinks it to no less than a third of its bytes
// (K, the Kelvin sign, is 3 bytes and k 1; İ is 2 and i 1).
const maxLowerShrink = 3

func base(tag string) string {
	tag = strings.ToLower(strings.TrimSpace(tag))
	l, _, _ := strings.Cut(tag, "-")
	return l
}

func supported(l string) bool { return l == "en" || l == "es" || l == "pt" }

// stopwords are frequent short words that tell the three languages apart.
var stopwords = map[string]string{
	"the": "en", "and": "en", "is": "en", "my": "en", "you": "en", "it": "en", "not": "en", "with": "en", "this": "en", "please": "en", "hello": "en", "help": "en", "i": "en", "have": "en",
	"el": "es", "los": "es", "las": "es", "y": "es", "mi": "es", "es": "es", "pero": "es", "por": "es", "hola": "es", "ayuda": "es", "gracias": "es", "tengo": "es", "puedo": "es", "muy": "es", "favor": "es", "usted": "es", "cuenta": "es", "funciona": "es",
	"o": "pt", "os": "pt", "e": "pt", "meu": "pt", "minha": "pt", "não": "pt", "nao": "pt", "olá": "pt", "ola": "pt", "obrigado": "pt", "obrigada": "pt", "você": "pt", "voce": "pt", "tenho": "pt", "posso": "pt", "muito": "pt", "socorro": "pt", "bom": "pt", "dia": "pt", "conta": "pt", "está": "pt",
}

// Detect guesses en, es or pt from stopwords; "" when the text says too little. It runs
// for every mail composed, so it walks the text once and lowers only words short enough
// to be a stopword.
func Detect(text string) string {
	if len(text) > detectBytes {
		text = text[:detectBytes]
	}
	score := map[string]int{}
	var buf [maxStopword + utf8.UTFMax]byte
	for word := range words.Runs(text, unicode.IsLetter) {
		if len(word) > maxLowerShrink*maxStopword {
			continue // too long to be a stopword once lowered
		}
		lower := buf[:0]
		for _, r := range word {
			if lower = utf8.AppendRune(lower, unicode.ToLower(r)); len(lower) > maxStopword {
				break
			}
		}
		if len(lower) > maxStopword {
			continue
		}
		if l, ok := stopwords[string(lower)]; ok { // no allocation: a map lookup by []byte
			score[l]++
		}
	}
	return clearWinner(score)
}

// clearWinner is the language with the highest score, "" when none scored or two tie.
func clearWinner(score map[string]int) string {
	best, n, second := "", 0, 0
	for _, l := range []string{"en", "es", "pt"} {
		switch {
		case score[l] > n:
			best, second, n = l, n, score[l]
		case score[l] > second:
			second = score[l]
		}
	}
	if n == 0 || n == second {
		return ""
	}
	return best
}

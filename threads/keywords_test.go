package threads

import (
	"maps"
	"strings"
	"testing"
	"unicode"
)

// countKeywords walks words without lowering and splitting the whole text; it must score
// as splitting the lowered text would.
func TestCountKeywordsMatchesSplittingLoweredText(t *testing.T) {
	t.Parallel()
	for _, text := range keywordTexts {
		got := map[string]int{}
		countKeywords(text, 1, got)
		if want := keywordsReference(text); !maps.Equal(got, want) {
			t.Errorf("countKeywords(%q) = %v, want %v", text, got, want)
		}
	}
}

func FuzzCountKeywords(f *testing.F) {
	for _, text := range keywordTexts {
		f.Add(text)
	}
	f.Fuzz(func(t *testing.T, text string) {
		got := map[string]int{}
		countKeywords(text, 1, got)
		if want := keywordsReference(text); !maps.Equal(got, want) {
			t.Errorf("countKeywords(%q) = %v, want %v", text, got, want)
		}
	})
}

// keywordsReference is the straightforward form: lower everything, split, look up.
func keywordsReference(text string) map[string]int {
	score := map[string]int{}
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\'' && r != '-'
	})
	for i, w := range words {
		w = strings.Trim(w, "'-")
		if cat, ok := categoryOf[w]; ok {
			score[cat]++
		}
		if !phraseStart[w] {
			continue
		}
		phrase := w
		for n := 1; n < 3 && i+n < len(words); n++ {
			phrase += " " + strings.Trim(words[i+n], "'-")
			if cat, ok := categoryOf[phrase]; ok {
				score[cat]++
			}
		}
	}
	return score
}

var keywordTexts = []string{
	"My INVOICE was charged twice; the Credit Card shows two charges.",
	"I can't LOG IN: locked out since the 2FA reset. Please add SMS sign-in.",
	"La app no funciona y el pago falló. ¿Podrían agregar PayPal? Sería bueno.",
	"Minha senha não funciona, a conta está bloqueada; nota fiscal errada. Seria bom ter recurso novo.",
	"--log-- in 'not' working' does not work doesn't work -- please -- add",
	"credit\ncard credit  card credit-card 'credit' 'card'",
	"x\xffinvoice\xfe refund error 500 five hundred",
	"", "reset my reset my password",
}

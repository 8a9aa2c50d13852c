package mailout

import (
	"strings"
	"unicode"
)

// pleas are words that carry no request by themselves: greetings, "help", "human", in
// English, Spanish and Portuguese.
var pleas = map[string]bool{
	"hello": true, "hi": true, "hey": true, "help": true, "human": true, "agent": true, "please": true,
	"urgent": true, "support": true, "anyone": true, "there": true, "need": true, "i": true, "a": true,
	"me": true, "to": true, "talk": true, "speak": true, "with": true, "person": true, "re": true,
	"good": true, "morning": true, "afternoon": true, "thanks": true, "thank": true, "you": true,
	"hola": true, "ayuda": true, "humano": true, "por": true, "favor": true, "buenos": true, "días": true,
	"dias": true, "buenas": true, "tardes": true, "necesito": true, "hablar": true, "con": true,
	"alguien": true, "persona": true, "agente": true, "urgente": true, "soporte": true,
	"olá": true, "ola": true, "oi": true, "bom": true, "dia": true, "boa": true, "tarde": true,
	"socorro": true, "falar": true, "atendente": true, "preciso": true, "de": true, "ajuda": true,
	"suporte": true, "alguém": true, "alguem": true, "obrigado": true, "obrigada": true, "com": true, "um": true,
}

// saysTooLittle: a first message that is only greetings and pleas ("hello", "help",
// "falar com atendente"), or fewer than three words of substance, gets a request for
// details instead of a plain confirmation.
func saysTooLittle(subject, text string) bool {
	if len(text) > 2000 {
		return false // nobody writes 2000 bytes of "hello"
	}
	substance := 0
	for _, w := range strings.FieldsFunc(strings.ToLower(subject+" "+text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if !pleas[w] {
			if substance++; substance >= 3 {
				return false
			}
		}
	}
	return true
}

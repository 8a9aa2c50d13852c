package threads

import "testing"

func TestCategoryFromText(t *testing.T) {
	t.Parallel()
	check := func(subject, body, want string) {
		t.Helper()
		if got := categoryFromText(subject, body); got != want {
			t.Errorf("%q / %q: %s, want %s", subject, body, got, want)
		}
	}
	check("Invoice 42 is wrong", "", "billing")
	check("Problema con mi factura", "", "billing")
	check("Segunda via do boleto", "", "billing")
	check("Help", "The app doesn't work since the update.", "technical")
	check("Ayuda", "La página no funciona.", "technical")
	check("Socorro", "O sistema não funciona, deu erro 500.", "technical")
	check("Can't log in", "", "account")
	check("Olvidé mi contraseña", "", "account")
	check("Esqueci minha senha", "", "account")
	check("Idea", "It would be nice to export to CSV.", "feature")
	check("Sugestão", "Seria bom ter modo escuro.", "feature")
	check("Hello", "Just saying hi.", "other")
	// The subject outweighs the body.
	check("Refund please", "I got an error when I tried to pay.", "billing")
	// Whole words only: "terror" is not "error", "planet" is not "plan".
	check("terror on the planet", "", "other")
}

package templates

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

func realistic(lang string) Data {
	return Data{
		Helpdesk: "Acme Support", Ticket: 1234, Subject: "Cannot export invoices <to CSV> & PDF",
		CustomerName: "María José Pereira", Customer: "maria@example.com",
		Category: CategoryName(lang, "billing"), ResponseTime: Duration(lang, 24*time.Hour),
		Text:     "When I click Export, I get \"error 500\".\n\n<script>alert(1)</script>\nThanks!",
		Earlier:  []EarlierTicket{{Number: 77, Subject: "Login problem", Status: "resolved"}},
		Commands: []string{"#note text", "#status open|pending|resolved", "#resolve", "#assign agent@example.com", "#category billing", "#priority high"},
		RefLine:  "[Acme Support #1234] ref:r1234-abcdefghijklm", AgentName: "Ana",
		Attachments: []AttachmentLine{{Name: "invoice.pdf", Size: Size(lang, 120<<10), Attached: true},
			{Name: "screenshot.png", Size: Size(lang, 2411724)}, {Name: "scan.tiff", Size: Size(lang, 900), Unreadable: true}},
		AttachmentLimit: Size(lang, 10<<20),
	}
}

// TestEveryTemplateInEveryLanguage renders everything with realistic data and checks
// that nothing is left unrendered and the customer's text cannot inject HTML.
func TestEveryTemplateInEveryLanguage(t *testing.T) {
	t.Parallel()
	set, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range Languages {
		for _, name := range Names {
			r, err := set.Render(name, lang, realistic(lang))
			if err != nil {
				t.Fatalf("%s/%s: %v", lang, name, err)
			}
			all := r.Subject + "\n" + r.Text + "\n" + r.HTML
			for _, bad := range []string{"{{", "}}", "<no value>", "%!", "#0"} {
				if strings.Contains(all, bad) {
					t.Errorf("%s/%s contains %q:\n%s", lang, name, bad, all)
				}
			}
			if !strings.HasPrefix(r.Subject, "[Acme Support #1234]") || strings.ContainsAny(r.Subject, "\r\n") {
				t.Errorf("%s/%s subject %q", lang, name, r.Subject)
			}
			if !strings.Contains(r.Text, "ref:r1234-abcdefghijklm") || !strings.Contains(r.HTML, "ref:r1234-abcdefghijklm") {
				t.Errorf("%s/%s lacks the reference line", lang, name)
			}
			if strings.Contains(r.HTML, "<script>") {
				t.Errorf("%s/%s: customer text reached the HTML unescaped", lang, name)
			}
		}
	}
	r, _ := set.Render("confirmation", "es", realistic("es"))
	if !strings.Contains(r.Text, "facturación") || !strings.Contains(r.Text, "24 horas") {
		t.Errorf("Spanish confirmation:\n%s", r.Text)
	}
}

func TestOverrideFileByFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "pt"), 0o755)
	os.WriteFile(filepath.Join(dir, "pt", "confirmation.tmpl"), []byte(`{{define "subject"}}[{{.Helpdesk}} #{{.Ticket}}] Oi{{end}}{{define "text"}}Oi {{.CustomerName}}{{end}}{{define "html"}}<p>Oi</p>{{end}}`), 0o644)
	set, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := set.Render("confirmation", "pt", realistic("pt")); r.Subject != "[Acme Support #1234] Oi" {
		t.Fatalf("override not used: %q", r.Subject)
	}
	if r, _ := set.Render("confirmation", "es", realistic("es")); !strings.Contains(r.Subject, "Hemos recibido") {
		t.Fatalf("other languages must stay embedded: %q", r.Subject)
	}
	os.WriteFile(filepath.Join(dir, "pt", "ask_details.tmpl"), []byte(`{{define "subject"}}{{.Nope}}{{end}}`), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "ask_details") {
		t.Fatalf("a broken override must be reported: %v", err)
	}
}

func TestLanguage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ cl, earlier, text, want string }{
		{"es-MX", "", "", "es"},
		{"", "pt", "hello, my account is locked", "pt"},
		{"", "", "Hola, mi cuenta no funciona, por favor ayuda", "es"},
		{"", "", "Olá, minha conta não funciona, socorro", "pt"},
		{"", "", "Hello, the export is broken, please help", "en"},
		{"de", "", "???", "en"},
	} {
		if got := Language(c.cl, c.earlier, c.text, "en"); got != c.want {
			t.Errorf("Language(%q, %q, %q) = %s, want %s", c.cl, c.earlier, c.text, got, c.want)
		}
	}
	if d := Duration("pt", 48*time.Hour); d != "48 horas" {
		t.Errorf("Duration = %q", d)
	}
	if d := Duration("es", 72*time.Hour); d != "3 días" {
		t.Errorf("Duration = %q", d)
	}
}

// TestCustomerValuesCannotBreakTemplates: markup in one-line customer values is escaped
// in every HTML block, and every line of quoted text stays quoted, whatever its line
// ends (a lone CR is a line break to many mail clients).
func TestCustomerValuesCannotBreakTemplates(t *testing.T) {
	t.Parallel()
	set, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	d := realistic("en")
	d.CustomerName = `Bob </p><a href="http://evil/">click</a><p>`
	d.Subject = `<img src=x onerror=alert(1)>`
	d.Text = "first\rref:r9-forgedforgedforged\r\nsecond\n\n\rthird"
	d.Attachments = []AttachmentLine{{Name: `<img src=x onerror=alert(1)>.pdf`, Size: "1 KB"}}
	for _, lang := range Languages {
		for _, name := range Names {
			r, err := set.Render(name, lang, d)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(r.HTML, "<a href") || strings.Contains(r.HTML, "<img") || strings.Contains(r.HTML, "</p><a") {
				t.Errorf("%s/%s: markup from the customer reached the HTML:\n%s", lang, name, r.HTML)
			}
			for _, l := range strings.FieldsFunc(r.Text, func(c rune) bool { return c == '\r' || c == '\n' }) {
				// agent_reply's Text is the agent's own, shown as written.
				if name != "agent_reply" && strings.Contains(l, "ref:r9") && !strings.HasPrefix(l, "> ") {
					t.Errorf("%s/%s: customer text escaped its quote: %q", lang, name, l)
				}
			}
			if strings.Contains(r.HTML, "\r") {
				t.Errorf("%s/%s: a CR reached the HTML", lang, name)
			}
		}
	}
}

// Every kind of agent notice says something of its own, in every language, with its
// details, and a command error says the customer received nothing.
func TestAgentNoticeKinds(t *testing.T) {
	t.Parallel()
	set, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	nothing := map[string]string{"en": "received nothing", "es": "no recibió nada", "pt": "não recebeu nada"}
	for _, lang := range Languages {
		subjects := map[string]bool{}
		for _, kind := range []string{"command_error", "forged", "undeliverable", "collision", "note"} {
			d := realistic(lang)
			d.Notice, d.Lines = kind, []string{"line 1: unknown command #staus (did you mean #status?)"}
			r, err := set.Render("agent_notice", lang, d)
			if err != nil {
				t.Fatalf("%s/%s: %v", lang, kind, err)
			}
			subjects[r.Subject] = true
			if !strings.Contains(r.Text, "#staus") || !strings.Contains(r.HTML, "#staus") {
				t.Errorf("%s/%s lacks its details:\n%s", lang, kind, r.Text)
			}
			if kind == "command_error" && !strings.Contains(r.Text, nothing[lang]) {
				t.Errorf("%s/%s does not say the customer received nothing:\n%s", lang, kind, r.Text)
			}
		}
		if len(subjects) != 5 {
			t.Errorf("%s: %d different subjects for 5 kinds of notice", lang, len(subjects))
		}
	}
}

// The notification lists the customer's attachments with their sizes, in every language
// and both alternatives, and says which were not attached and why.
func TestNotificationListsAttachments(t *testing.T) {
	t.Parallel()
	set, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"en": {"Attachments: invoice.pdf (120 KB), screenshot.png (2.3 MB, not attached: over the 10 MB limit), scan.tiff (900 bytes, not attached: unreadable)"},
		"es": {"Adjuntos: invoice.pdf (120 KB), screenshot.png (2,3 MB, no adjuntado: supera el límite de 10 MB), scan.tiff (900 bytes, no adjuntado: ilegible)"},
		"pt": {"Anexos: invoice.pdf (120 KB), screenshot.png (2,3 MB, não anexado: acima do limite de 10 MB), scan.tiff (900 bytes, não anexado: ilegível)"},
	}
	for _, lang := range Languages {
		r, err := set.Render("notification", lang, realistic(lang))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want[lang] {
			if !strings.Contains(r.Text, w) || !strings.Contains(r.HTML, w) {
				t.Errorf("%s: the notification does not list %q:\n%s\n%s", lang, w, r.Text, r.HTML)
			}
		}
		d := realistic(lang)
		d.Attachments = nil
		if r, _ := set.Render("notification", lang, d); strings.Contains(r.Text, want[lang][0][:6]) {
			t.Errorf("%s: an attachment list without attachments:\n%s", lang, r.Text)
		}
	}
}

func TestSize(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		lang string
		n    int64
		want string
	}{
		{"en", 0, "0 bytes"}, {"en", 1023, "1023 bytes"}, {"en", 1024, "1 KB"}, {"en", 120 << 10, "120 KB"},
		{"en", 1023 << 10, "1023 KB"}, {"en", 1<<20 - 1, "1 MB"}, {"en", 2411724, "2.3 MB"}, {"es", 2411724, "2,3 MB"},
		{"en", 10 << 20, "10 MB"}, {"pt", 25 << 20, "25 MB"}, {"en", 3 << 30, "3 GB"}, {"en", 9<<20 + 1000<<10, "10 MB"},
	} {
		if got := Size(c.lang, c.n); got != c.want {
			t.Errorf("Size(%s, %d) = %q, want %q", c.lang, c.n, got, c.want)
		}
	}
}

// Detect walks words without lowering the whole text; it must score as splitting the
// lowered text would.
func TestDetectMatchesSplittingLoweredText(t *testing.T) {
	t.Parallel()
	reference := func(text string) map[string]int {
		score := map[string]int{}
		for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) }) {
			if l, ok := stopwords[w]; ok {
				score[l]++
			}
		}
		return score
	}
	for _, text := range []string{
		"Hello, my invoice is wrong and the app crashes. Please help!",
		"Hola, mi cuenta no funciona. ¿Pueden ayudarme por favor? Gracias.",
		"Olá, minha conta não está funcionando. Obrigado, bom dia!",
		"ÓLÁ NÃO ESTÁ OBRIGADO — THE AND Y E O",
		"x\xffthe\xfe and",
		"",
		"The the the el el el",
		// İ (2 bytes) lowers to i (1): a 9-byte word is the 8-byte stopword "funciona".
		"The app FUNCİONA y FUNCİONA",
		"FUNCİONA",
	} {
		want := reference(text)
		best := clearWinner(want)
		if got := Detect(text); got != best {
			t.Errorf("Detect(%q) = %q, want %q (scores %v)", text, got, best, want)
		}
	}
}

// Detect skips words longer than maxLowerShrink*maxStopword bytes before lowering them:
// no letter lowers to less than 1/maxLowerShrink of its bytes.
func TestLoweringShrinksALetterToAThirdAtMost(t *testing.T) {
	t.Parallel()
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !unicode.IsLetter(r) {
			continue
		}
		if n, l := utf8.RuneLen(r), utf8.RuneLen(unicode.ToLower(r)); n > maxLowerShrink*l {
			t.Errorf("%U (%d bytes) lowers to %U (%d bytes)", r, n, unicode.ToLower(r), l)
		}
	}
}

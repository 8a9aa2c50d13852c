// Package templates renders the mail replydesk sends: a subject, a plain-text body and
// an HTML alternative from the same data, in English, Spanish or Portuguese. Templates
// are embedded; a directory can override any of them file by file. It imports no other
// replydesk package.
package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	texttemplate "text/template"
)

//go:embed mail
var embedded embed.FS

// Names of the templates, and the languages each exists in.
var (
	Names     = []string{"confirmation", "notification", "agent_reply", "ask_details", "agent_notice"}
	Languages = []string{"en", "es", "pt"}
)

// Set holds every template in every language, parsed once.
type Set struct {
	text map[string]*texttemplate.Template // key: lang/name
	html map[string]*htmltemplate.Template
}

// Rendered is one mail's content.
type Rendered struct {
	Subject string
	Text    string
	HTML    string
}

// Load parses the embedded templates; a file overrideDir/<lang>/<name>.tmpl, when
// present, replaces the embedded one ("" for none).
func Load(overrideDir string) (*Set, error) {
	s := &Set{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	var errs []error
	for _, lang := range Languages {
		for _, name := range Names {
			src, from, err := source(overrideDir, lang, name)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			key := lang + "/" + name
			t, err := texttemplate.New(key).Option("missingkey=error").Funcs(textFuncs).Parse(src)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", from, err))
				continue
			}
			h, err := htmltemplate.New(key).Option("missingkey=error").Funcs(htmlFuncs).Parse(src)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", from, err))
				continue
			}
			for _, block := range []string{"subject", "text", "html"} {
				if t.Lookup(block) == nil {
					errs = append(errs, fmt.Errorf("%s: no {{define %q}} block", from, block))
				}
			}
			s.text[key], s.html[key] = t, h
		}
	}
	return s, errors.Join(errs...)
}

func source(overrideDir, lang, name string) (src, from string, err error) {
	file := lang + "/" + name + ".tmpl"
	if overrideDir != "" {
		path := filepath.Join(overrideDir, lang, name+".tmpl")
		if b, err := os.ReadFile(path); err == nil {
			return string(b), path, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", path, err
		}
	}
	b, err := embedded.ReadFile("mail/" + file)
	return string(b), "embedded " + file, err
}

// Render fills template name in language lang (falling back to English) with data.
func (s *Set) Render(name, lang string, data any) (Rendered, error) {
	key := lang + "/" + name
	if s.text[key] == nil {
		key = "en/" + name
	}
	t, h := s.text[key], s.html[key]
	if t == nil || h == nil {
		return Rendered{}, fmt.Errorf("no template %q", name)
	}
	var subj, text, html bytes.Buffer
	err := errors.Join(t.ExecuteTemplate(&subj, "subject", data), t.ExecuteTemplate(&text, "text", data),
		h.ExecuteTemplate(&html, "html", data))
	if err != nil {
		return Rendered{}, fmt.Errorf("render %s: %w", key, err)
	}
	return Rendered{
		Subject: strings.Join(strings.Fields(subj.String()), " "),
		Text:    strings.TrimSpace(text.String()) + "\n",
		HTML:    strings.TrimSpace(html.String()) + "\n",
	}, nil
}

// Both parsers read the whole file (all three blocks), so both know every function;
// the text parser never executes the html block.
var textFuncs = texttemplate.FuncMap{"quote": quoteText, "paragraphs": paragraphs}
var htmlFuncs = htmltemplate.FuncMap{"quote": quoteText, "paragraphs": paragraphs}

// lineEnds makes every line end (CRLF, a lone CR) an LF, so that quote and paragraphs
// see every line a mail client would show.
var lineEnds = strings.NewReplacer("\r\n", "\n", "\r", "\n")

// quoteText prefixes every line with "> ", as mail clients quote.
func quoteText(s string) string {
	lines := strings.Split(strings.TrimRight(lineEnds.Replace(s), "\n"), "\n")
	for i, l := range lines {
		lines[i] = "> " + l
	}
	return strings.Join(lines, "\n")
}

// paragraphs turns plain text into escaped HTML paragraphs with line breaks.
func paragraphs(s string) htmltemplate.HTML {
	var b strings.Builder
	for _, p := range strings.Split(strings.TrimSpace(lineEnds.Replace(s)), "\n\n") {
		b.WriteString("<p>")
		for i, line := range strings.Split(p, "\n") {
			if i > 0 {
				b.WriteString("<br>\n")
			}
			b.WriteString(htmltemplate.HTMLEscapeString(line))
		}
		b.WriteString("</p>\n")
	}
	return htmltemplate.HTML(b.String())
}

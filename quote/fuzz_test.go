package quote

import (
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// seeds are the fuzzers' starting points besides the fixtures.
var seeds = []string{
	"",
	"Hello\n\nOn Mon, 3 Mar 2025 at 10:12, A <a@b.c> wrote:\n> hi\n",
	"#resolve\n\n-- \nAna\n",
	"> a\nb\n> c\nd\n",
	"From: a\nSent: b\nTo: c\nSubject: d\n\nx",
	"```\n> not a quote\n```\n",
	"On 1\n\n<\nmailto:x <x@y.z>\n> wrote:\n",
}

// checkResult holds for every result: valid UTF-8 stays valid, and the parts are made of
// the input's lines.
func checkResult(t *testing.T, in string, r Result, lineCheck bool) {
	t.Helper()
	if utf8.ValidString(in) {
		for part, s := range map[string]string{"New": r.New, "Quoted": r.Quoted, "Signature": r.Signature, "Marker": r.Marker} {
			if !utf8.ValidString(s) {
				t.Fatalf("%s is not valid UTF-8: %q", part, s)
			}
		}
	}
	if lineCheck {
		checkInvariants(t, in, r)
	}
}

func FuzzStrip(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	for _, fx := range readFixtures(f, "text") {
		f.Add(fx.sections["input"])
	}
	f.Fuzz(func(t *testing.T, in string) {
		checkResult(t, in, Strip(in), true)
	})
}

func FuzzStripHTML(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	for _, fx := range readFixtures(f, "html") {
		f.Add(fx.sections["input"])
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := StripHTML(in)
		checkResult(t, in, r, false)
		// Every run of letters and digits in New comes from the input's text. (Marks and
		// spacing may differ: html2text writes "*bold*" and "( link )" around what is left
		// of an element, and joins ".text" to the text before it.)
		text := render(parseBounded(in)) + "\n" + in
		notAlnum := func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }
		for _, w := range strings.FieldsFunc(r.New, notAlnum) {
			if !strings.Contains(text, w) {
				t.Fatalf("New has %q, which is not in the input's text", w)
			}
		}
	})
}

// Inputs built to make a careless matcher slow: name, the piece repeated to 10 MB.
var (
	hugeText = [][2]string{
		{"'>' lines", ">\n"},
		{"quoted lines", "> quoted text of the original message\n"},
		{"nested quotes", ">>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>\n"},
		{"one line", "x"},
		{"attribution starts", "On 1 May 2025 at 10:12 Bob <\n"},
		{"attributions", "On Mon, 3 Mar 2025 at 10:12, A <a@b.c> wrote:\n"},
		{"headers", "From: a\nTo: b\n"},
		{"header blocks", "From: a\nSent: 1\nTo: b\nSubject: c\n"},
		{"delimiters", "________\n\n"},
		{"sig dashes", "-- \n"},
		{"mobile", "Sent from my iPhone\n"},
		{"blank", "\n"},
		{"fences", "```\n"},
		{"commands", "#x\n"},
		{"text", "Lorem ipsum dolor sit amet, 12 consectetur @ adipiscing.\n"},
	}
	hugeHTML = [][2]string{
		{"nested divs", "<div>"},
		{"nested blockquotes", "<blockquote>x<br>"},
		{"nested bold", "<b>"},
		{"links", "<a href=x>y"},
		{"breaks", "<br>"},
		{"text", "Lorem ipsum dolor sit amet. "},
		{"quote containers", `<div class="gmail_quote">x</div>`},
		{"border divs", `<div style="border-top:solid #E1E1E1 1pt">`},
		{"nested tables", "<table><tr><td>"},
		{"nested lists", "<ul><li>"},
		{"paragraphs", "<p>x"},
		{"misnested format", "<b><i>x</b></i>"},
		{"format in table", "<table><b>x"},
		{"templates", "<template>"},
		{"svg", "<svg><g>"},
		{"quoted lines", "&gt; quoted text<br>"},
	}
)

// TestHugeInputs: bounded time on inputs built to be slow: Strip takes at most one
// second for 10 MB, StripHTML (which also parses and renders the HTML) at most two for
// 4 MB. Time is the process's CPU time, so that other packages' tests running beside this
// one do not count; this test runs alone in its process (it is not parallel). With the
// race detector (up to 20 times slower) the inputs are a twentieth of that, the bounds
// unchanged.
func TestHugeInputs(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 31 inputs of 4 to 10 MB")
	}
	textSize, htmlSize := 10<<20, 4<<20
	if raceEnabled {
		textSize, htmlSize = textSize/20, htmlSize/20
	}
	size := textSize
	repeat := func(s string) string { return strings.Repeat(s, size/len(s)+1)[:size] }
	measure := func(name string, limit time.Duration, f func()) {
		start, cpu := time.Now(), cpuTime()
		f()
		wall, used := time.Since(start), cpuTime()-cpu
		t.Logf("%-36s wall %-14v cpu %v", name, wall, used)
		if used > limit {
			t.Errorf("%s: %v of CPU time, more than %v", name, used, limit)
		}
	}
	for _, c := range hugeText {
		in := repeat(c[1])
		measure("Strip("+c[0]+")", time.Second, func() { Strip(in) })
	}
	size = htmlSize
	for _, c := range hugeHTML {
		in := repeat(c[1])
		measure("StripHTML("+c[0]+")", 2*time.Second, func() { StripHTML(in) })
	}
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestDeepHTML: nesting far beyond the bounds still renders its text.
func TestDeepHTML(t *testing.T) {
	t.Parallel()
	for _, tag := range []string{"div", "blockquote", "span", "table"} {
		in := strings.Repeat("<"+tag+">", 5000) + "deep text" + strings.Repeat("</"+tag+">", 5000) + "<p>after</p>"
		r := StripHTML(in)
		if all := r.New + r.Quoted; !strings.Contains(all, "deep text") || !strings.Contains(all, "after") {
			t.Errorf("%s: text lost: %+v", tag, r)
		}
	}
}

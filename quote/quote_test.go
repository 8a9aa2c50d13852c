package quote

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fixture is one testdata file: a description, then "-- name --" sections: input, new
// and optionally signature, marker, forwarded ("true"), quoted (lines that must be in
// Quoted) and crlf (turn the input's LF into CRLF).
type fixture struct {
	name     string
	sections map[string]string
}

var sectionLine = regexp.MustCompile(`^-- ([a-z]+) --$`)

func readFixtures(t testing.TB, dir string) []fixture {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in testdata/%s: %v", dir, err)
	}
	var fs []fixture
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fx := fixture{name: filepath.Base(f), sections: map[string]string{}}
		cur := ""
		for _, l := range strings.SplitAfter(string(b), "\n") {
			if m := sectionLine.FindStringSubmatch(strings.TrimRight(l, "\n")); m != nil {
				cur = m[1]
				fx.sections[cur] = ""
				continue
			}
			if cur != "" {
				fx.sections[cur] += l
			}
		}
		if _, ok := fx.sections["input"]; !ok {
			t.Fatalf("%s: no input section", f)
		}
		fs = append(fs, fx)
	}
	return fs
}

func (fx fixture) check(t *testing.T, r Result) {
	t.Helper()
	want := func(key string) (string, bool) {
		v, ok := fx.sections[key]
		return strings.TrimRight(v, "\n"), ok
	}
	if v, ok := want("new"); ok && r.New != v {
		t.Errorf("New:\n got %q\nwant %q", r.New, v)
	}
	if v, ok := want("signature"); ok && r.Signature != v {
		t.Errorf("Signature:\n got %q\nwant %q", r.Signature, v)
	}
	if v, ok := want("marker"); ok && r.Marker != v {
		t.Errorf("Marker: got %q, want %q", r.Marker, v)
	}
	if v, ok := want("forwarded"); ok && r.Forwarded != (v == "true") {
		t.Errorf("Forwarded: got %v, want %s", r.Forwarded, v)
	}
	if v, ok := want("quoted"); ok {
		for _, l := range strings.Split(v, "\n") {
			if !strings.Contains(r.Quoted, l) {
				t.Errorf("Quoted lacks %q:\n%s", l, r.Quoted)
			}
		}
	}
	if t.Failed() {
		t.Logf("result: %+v", r)
	}
}

func TestStripFixtures(t *testing.T) {
	t.Parallel()
	for _, fx := range readFixtures(t, "text") {
		t.Run(fx.name, func(t *testing.T) {
			t.Parallel()
			in := fx.sections["input"]
			if _, ok := fx.sections["crlf"]; ok {
				in = strings.ReplaceAll(in, "\n", "\r\n")
			}
			r := Strip(in)
			fx.check(t, r)
			checkInvariants(t, in, r)
		})
	}
}

func TestStripHTMLFixtures(t *testing.T) {
	t.Parallel()
	for _, fx := range readFixtures(t, "html") {
		t.Run(fx.name, func(t *testing.T) {
			t.Parallel()
			fx.check(t, StripHTML(fx.sections["input"]))
		})
	}
}

// checkInvariants holds for every Strip result: every line of New, Quoted and Signature
// is a line of the input (as Strip cuts it), and no non-blank input line is lost.
func checkInvariants(t testing.TB, in string, r Result) {
	t.Helper()
	inputLines := map[string]bool{}
	for _, l := range splitLines(in) {
		inputLines[l] = true
	}
	outLines := map[string]int{}
	for part, s := range map[string]string{"New": r.New, "Quoted": r.Quoted, "Signature": r.Signature} {
		for _, l := range strings.Split(s, "\n") {
			if l != "" && !inputLines[l] {
				t.Fatalf("%s has a line that is not in the input: %q", part, l)
			}
			outLines[l]++
		}
	}
	for _, l := range splitLines(in) {
		if !isBlank(l) && outLines[l] == 0 {
			t.Fatalf("input line lost: %q", l)
		}
	}
}

// splitLines is the input cut as Strip cuts it.
func splitLines(s string) []string {
	ls := newLineSet(s)
	lines := make([]string, ls.n())
	for i := range lines {
		lines[i] = ls.at(i)
	}
	return lines
}

func TestStripEmpty(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "\n", " \r\n\t\n", "\u00a0"} {
		if r := Strip(in); r != (Result{}) {
			t.Errorf("Strip(%q) = %+v, want the zero Result", in, r)
		}
	}
	if r := StripHTML(""); r.New != "" || r.Quoted != "" {
		t.Errorf("StripHTML(\"\") = %+v", r)
	}
}

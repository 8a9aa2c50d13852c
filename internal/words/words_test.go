package words

import (
	"slices"
	"strings"
	"testing"
	"unicode"
)

// Runs yields what strings.FieldsFunc returns, without the slice.
func TestRunsMatchesFieldsFunc(t *testing.T) {
	t.Parallel()
	notLetter := func(r rune) bool { return !unicode.IsLetter(r) }
	for _, text := range []string{"", "one", " two  words ", "ünï—cødé, 3 x\xffy", "...", "a"} {
		got := slices.Collect(Runs(text, unicode.IsLetter))
		if want := strings.FieldsFunc(text, notLetter); !slices.Equal(got, want) {
			t.Errorf("Runs(%q) = %q, want %q", text, got, want)
		}
	}
	for range Runs("stop after one", unicode.IsLetter) {
		break // an early stop must not panic
	}
}

func FuzzRuns(f *testing.F) {
	f.Add("Hello, wörld\xff 42")
	f.Fuzz(func(t *testing.T, text string) {
		got := slices.Collect(Runs(text, unicode.IsLetter))
		if want := strings.FieldsFunc(text, func(r rune) bool { return !unicode.IsLetter(r) }); !slices.Equal(got, want) {
			t.Errorf("Runs(%q) = %q, want %q", text, got, want)
		}
	})
}

// Package words splits text into words without copying it: the classifiers that run on
// every message (language, category) walk the text once with it.
package words

import "iter"

// Runs yields the maximal runs of text whose runes satisfy in, in order, as substrings
// of text.
func Runs(text string, in func(rune) bool) iter.Seq[string] {
	return func(yield func(string) bool) {
		start := -1
		for i, r := range text {
			switch ok := in(r); {
			case ok && start < 0:
				start = i
			case !ok && start >= 0:
				if !yield(text[start:i]) {
					return
				}
				start = -1
			}
		}
		if start >= 0 {
			yield(text[start:])
		}
	}
}

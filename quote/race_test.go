//go:build race

package quote

// raceEnabled slows the time bounds: the race detector makes code 5–20 times slower.
const raceEnabled = true

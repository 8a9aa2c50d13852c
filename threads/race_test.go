//go:build race

package threads

// raceEnabled: the race detector makes code 5-20 times slower; timing tests scale down.
const raceEnabled = true

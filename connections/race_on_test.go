//go:build race

package connections

const raceEnabled = true

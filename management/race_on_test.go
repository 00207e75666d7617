//go:build race

package management

const raceEnabled = true

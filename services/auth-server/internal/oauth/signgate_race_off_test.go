//go:build !race

package oauth

// raceEnabled: see signgate_race_on_test.go.
const raceEnabled = false

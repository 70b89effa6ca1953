//go:build race

package daemon_test

// raceBuild builds the binary under test with the race detector when the
// tests run with it, so that the daemon's own goroutines are checked too.
const raceBuild = true

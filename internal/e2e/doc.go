// Package e2e holds backupd's process-level suites: they build the real
// binary and run `backupd atlas-sim -admin` and `backupd run` as separate
// processes, talking to them only the way an operator would (HTTP, signals,
// the CLI, the journal file) and to the simulator's /_sim/ test-control API.
//
// The suites live in the _test.go files; docs/testing.md describes what each
// one proves and how to run the larger sizes. There is no library code here.
package e2e

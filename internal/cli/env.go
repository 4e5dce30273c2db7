// Package cli implements backupd's verbs: flag parsing, output and exit
// codes. Each verb is a function taking its arguments, output streams and
// an Env, so tests drive verbs without a process.
package cli

import (
	"os"
	"time"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/policy"
)

// Env is what verbs take from the process: environment, files, time.
type Env struct {
	Policy policy.Env
	Getenv func(string) string
	Now    func() time.Time
	Clock  clock.Clock
}

// OSEnv is the real process environment.
func OSEnv() Env {
	c := clock.Real()
	return Env{Policy: policy.OSEnv(), Getenv: os.Getenv, Now: c.Now, Clock: c}
}

// Exit codes shared by every verb.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

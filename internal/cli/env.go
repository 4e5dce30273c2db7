// Package cli implements backupd's verbs: flag parsing, output and exit
// codes. Each verb is a function taking its arguments, output streams and
// an Env, so tests drive verbs without a process.
package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/backupd/backupd/internal/clock"
	"github.com/backupd/backupd/internal/leader"
	"github.com/backupd/backupd/internal/policy"
)

// Env is what verbs take from the process: environment, files, time.
type Env struct {
	Policy policy.Env
	Getenv func(string) string
	Now    func() time.Time
	Clock  clock.Clock
	// Elect is the leader-election factory, nil in a build without the
	// `ha` tag (cmd/backupd/ha.go sets it).
	Elect leader.Factory
}

// OSEnv is the real process environment.
func OSEnv() Env {
	c := clock.Real()
	return Env{Policy: policy.OSEnv(), Getenv: os.Getenv, Now: c.Now, Clock: c}
}

// timeFlags adds -time-scale and -time-anchor to a verb: dry-run aids that
// make the daemon and the simulator share a clock running faster than real
// time. They are not for production.
type timeFlags struct {
	scale  float64
	anchor int64
}

func (t *timeFlags) register(fs *flag.FlagSet) {
	fs.Float64Var(&t.scale, "time-scale", 1, "dry runs only: run the clock this many times faster than real time")
	fs.Int64Var(&t.anchor, "time-anchor", 0, "dry runs only: Unix time (seconds) at which the scaled clock equals real time; give the daemon and atlas-sim the same value")
}

// deprecatedPrefix starts the usage of every deprecated flag; completion
// leaves such flags out.
const deprecatedPrefix = "deprecated: "

// deprecatedFlag keeps old working as another name of the flag now: each
// use sets now and warns on stderr, naming the flag to use instead. One
// meaning has one name across verbs; the old names stay so scripts do not
// break, and the warning tells them to move.
func deprecatedFlag(fs *flag.FlagSet, stderr io.Writer, old, now string) {
	fs.Func(old, deprecatedPrefix+"use -"+now+" (the same meaning)", func(s string) error {
		fmt.Fprintf(stderr, "backupd %s: warning: -%s is deprecated and will be removed; use -%s (the same meaning)\n", fs.Name(), old, now)
		return fs.Set(now, s)
	})
}

// clock returns the verb's clock: env's, or a scaled one.
func (t *timeFlags) clock(env Env) (clock.Clock, error) {
	if t.scale == 1 && t.anchor == 0 {
		return env.Clock, nil
	}
	if t.scale <= 0 {
		return nil, fmt.Errorf("-time-scale must be positive, got %g", t.scale)
	}
	anchor := env.Now()
	if t.anchor != 0 {
		anchor = time.Unix(t.anchor, 0)
	}
	return clock.ScaledFrom(anchor, t.scale), nil
}

// Exit codes shared by every verb.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	// exitSkipped is trigger's answer when the daemon accepted the request
	// but a run it created was skipped, so nothing (or not all) will run.
	exitSkipped = 3
	// exitRunFailed is trigger -wait's answer when a run it followed failed.
	exitRunFailed = 4
	// exitWaitTimeout is trigger -wait's answer when -timeout passed (or it
	// was interrupted) with a run still in flight.
	exitWaitTimeout = 5
	// exitNotMet is report's answer when a cluster in the report did not
	// meet its policies over the period (the report is printed all the
	// same).
	exitNotMet = 6
)

// Package verify runs a restore drill's verify command: the user's own
// check that a restored scratch cluster holds what it should. backupd
// knows nothing of the data; the command's exit code decides. It runs
// without a shell, in a small environment of its own (the daemon's secrets
// are not inherited), in its own process group so a timeout kills
// whatever it started, and only a bounded tail of its output is kept.
package verify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/backupd/backupd/internal/clock"
)

// Request is one verification.
type Request struct {
	Command []string      // argv; Command[0] is looked up in PATH when it has no slash
	Timeout time.Duration // the command is killed after it (0: no limit but ctx's)
	Env     []string      // KEY=VALUE pairs added to the minimal environment
}

// Result is what a verification showed.
type Result struct {
	// ExitCode is the command's exit status (-1 when it did not exit by itself).
	ExitCode int
	// Output is the tail of its combined stdout and stderr, at most the
	// Runner's MaxOutput bytes; Truncated reports that earlier bytes were dropped.
	Output    string
	Truncated bool
	Duration  time.Duration
	// TimedOut reports that Timeout killed it.
	TimedOut bool
	// Err is set when the command could not be started or was killed;
	// nil with ExitCode 0 is the only success.
	Err error
}

// OK reports a verified restore.
func (r Result) OK() bool { return r.Err == nil && r.ExitCode == 0 }

// Runner runs verify commands.
type Runner struct {
	Clock clock.Clock
	// MaxOutput bounds the output kept (default 4 KiB).
	MaxOutput int
	// Inherit names the daemon's environment variables passed on (default
	// PATH, HOME, LANG, TZ, SSL_CERT_FILE, SSL_CERT_DIR); never credentials.
	Inherit []string
	// KillGrace is how long the command's pipes may stay open after it was
	// killed before Run gives up on them (default 5s).
	KillGrace time.Duration
}

var defaultInherit = []string{"PATH", "HOME", "LANG", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR"}

// Run runs req.Command to its end, its Timeout, or ctx's end.
func (v Runner) Run(ctx context.Context, req Request) Result {
	clk := v.Clock
	if clk == nil {
		clk = clock.Real()
	}
	limit := v.MaxOutput
	if limit <= 0 {
		limit = 4 << 10
	}
	grace := v.KillGrace
	if grace <= 0 {
		grace = 5 * time.Second
	}
	if len(req.Command) == 0 || strings.TrimSpace(req.Command[0]) == "" {
		return Result{ExitCode: -1, Err: errors.New("verify: no command")}
	}
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, req.Command[0], req.Command[1:]...)
	inherit := v.Inherit
	if inherit == nil {
		inherit = defaultInherit
	}
	for _, k := range inherit {
		if val, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+val)
		}
	}
	cmd.Env = append(cmd.Env, req.Env...)
	out := &tail{max: limit}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The whole group: a script's children die with it.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = grace
	start := clk.Now()
	err := cmd.Run()
	res := Result{Duration: clk.Now().Sub(start), ExitCode: -1}
	res.Output, res.Truncated = out.String()
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && req.Timeout > 0:
		res.TimedOut = true
		res.Err = fmt.Errorf("verify command %s timed out after %s and was killed", req.Command[0], req.Timeout)
	case ctx.Err() != nil:
		res.Err = fmt.Errorf("verify command %s stopped: %w", req.Command[0], ctx.Err())
	case errors.As(err, &ee):
		// A plain non-zero exit: ExitCode says it, no error.
		if res.ExitCode < 0 {
			res.Err = fmt.Errorf("verify command %s: %w", req.Command[0], err)
		}
	case err != nil:
		res.Err = fmt.Errorf("verify command %s could not run: %w", req.Command[0], err)
	}
	return res
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped bool
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.dropped = true
	}
	return n, nil
}

func (t *tail) String() (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.ToValidUTF8(string(t.buf), "\uFFFD"), t.dropped
}

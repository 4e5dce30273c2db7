package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/backupd/backupd/internal/clock"
)

// proc is a child process (the simulator or the daemon) whose output goes
// to a log file in the work directory.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{} // closed when the process has exited
	err     error         // Wait's result, valid once done is closed
}

// startProc starts bin with args and env (nil: fleetbench's own), stdout
// and stderr appended to logPath.
func startProc(clk clock.Clock, name, bin string, args, env []string, logPath string) (*proc, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("starting the %s: opening its log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr, cmd.Env = logFile, logFile, env
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	p.started = clk.Now()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting the %s (%s %s): %w", name, bin, strings.Join(args, " "), err)
	}
	go func() {
		p.err = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// pid is the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exitError describes an exit that was not asked for, with the log's tail.
func (p *proc) exitError() error {
	tail := ""
	if data, err := os.ReadFile(p.logPath); err == nil {
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		tail = strings.Join(lines[max(0, len(lines)-5):], "\n  ")
	}
	return fmt.Errorf("the %s exited early (%v); last lines of %s:\n  %s", p.name, p.err, p.logPath, tail)
}

// stop sends SIGTERM and waits up to grace (real time) before killing.
func (p *proc) stop(clk clock.Clock, grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stopping the %s: %w", p.name, err)
	}
	t := clk.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C():
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("the %s did not stop within %s of SIGTERM and was killed", p.name, grace)
	}
}

// waitUntil waits until the real clock reaches t, failing if ctx ends or
// one of procs exits first.
func waitUntil(ctx context.Context, clk clock.Clock, t time.Time, procs ...*proc) error {
	d := t.Sub(clk.Now())
	if d <= 0 {
		return nil
	}
	timer := clk.NewTimer(d)
	defer timer.Stop()
	for _, p := range procs {
		select {
		case <-p.done:
			return p.exitError()
		default:
		}
	}
	done := make(chan int, len(procs))
	stop := make(chan struct{})
	defer close(stop)
	for i, p := range procs {
		go func() {
			select {
			case <-p.done:
				done <- i
			case <-stop:
			}
		}()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C():
		return nil
	case i := <-done:
		return procs[i].exitError()
	}
}

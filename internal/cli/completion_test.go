package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/run"
)

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := Completion(context.Background(), []string{shell}, &out, &errOut, OSEnv()); code != 0 {
		t.Fatalf("completion %s: exit %d: %s", shell, code, errOut.String())
	}
	return out.String()
}

// TestCompletionScriptsParse: each script is valid for its shell (bash -n,
// zsh -n, fish -n; a shell that is not installed is skipped) and names
// every verb and every current flag, and no deprecated one.
func TestCompletionScriptsParse(t *testing.T) {
	specs := verbSpecs(context.Background(), OSEnv())
	if len(specs) != len(Verbs()) {
		t.Fatalf("%d verb specs for %d verbs", len(specs), len(Verbs()))
	}
	for _, v := range specs {
		if v.Name != "completion" && v.Name != "version" && len(v.Flags) == 0 {
			t.Errorf("verb %s: no flag read from its -h", v.Name)
		}
	}
	for _, shell := range shells {
		t.Run(shell, func(t *testing.T) {
			script := completionScript(t, shell)
			for _, v := range specs {
				if !strings.Contains(script, v.Name) {
					t.Errorf("%s script lacks verb %s", shell, v.Name)
				}
				for _, f := range v.Flags {
					if !strings.Contains(script, f.Name) {
						t.Errorf("%s script lacks %s -%s", shell, v.Name, f.Name)
					}
				}
			}
			for _, gone := range []string{"-speed", "-json", "deprecated"} {
				if strings.Contains(script, gone) {
					t.Errorf("%s script offers %q", shell, gone)
				}
			}
			path, err := exec.LookPath(shell)
			if err != nil {
				t.Skipf("%s is not installed: syntax not checked", shell)
			}
			file := filepath.Join(t.TempDir(), "backupd."+shell)
			if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if out, err := exec.CommandContext(ctx, path, "-n", file).CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("%s -n: %v\n%s", shell, err, out)
			}
		})
	}
}

// shellAndScript finds the shell (skipping without it) and writes its
// completion script to a file.
func shellAndScript(t *testing.T, shell string) (path, file string) {
	t.Helper()
	path, err := exec.LookPath(shell)
	if err != nil {
		t.Skipf("%s is not installed", shell)
	}
	file = filepath.Join(t.TempDir(), "backupd."+shell)
	if err := os.WriteFile(file, []byte(completionScript(t, shell)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, file
}

// TestBashCompletes: the bash script, sourced, completes verbs, flags and
// flag values the way a user sees them at TAB.
func TestBashCompletes(t *testing.T) {
	bash, file := shellAndScript(t, "bash")
	for _, c := range []struct {
		words string // the command line; the last word is being completed
		want  []string
		not   []string
	}{
		{"backupd ru", []string{"run", "runs"}, nil},
		{"backupd runs -o ", []string{"table", "json"}, nil},
		{"backupd runs -result ", []string{"success", "failure", "timeout"}, nil},
		{"backupd demo -", []string{"-time-scale", "-duration", "-listen", "-logs"}, []string{"-speed"}},
		{"backupd atlas-sim -", []string{"-lifecycle-scale", "-time-scale", "-time-anchor", "-fixture"}, []string{"-speed"}},
		{"backupd status -", []string{"-o", "-watch", "-addr", "-config"}, []string{"-json"}},
		{"backupd completion ", []string{"bash", "zsh", "fish"}, nil},
		{"backupd trigger -policy ", nil, []string{"-wait"}},
	} {
		words := strings.Split(c.words, " ")
		script := "source " + file + "\nCOMP_WORDS=("
		for _, w := range words {
			script += "'" + w + "' "
		}
		script += ")\nCOMP_CWORD=" + strconv.Itoa(len(words)-1) + "\n_backupd\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, bash, "--norc", "--noprofile", "-c", script).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%q: %v\n%s", c.words, err, out)
		}
		got := strings.Fields(string(out))
		for _, w := range c.want {
			if !slices.Contains(got, w) {
				t.Errorf("%q completes to %q, missing %q", c.words, got, w)
			}
		}
		for _, w := range c.not {
			if slices.Contains(got, w) {
				t.Errorf("%q completes to %q, with %q", c.words, got, w)
			}
		}
	}
}

// TestFishCompletes: fish, when installed, completes from the script.
func TestFishCompletes(t *testing.T) {
	fish, file := shellAndScript(t, "fish")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, fish, "--no-config", "-c", "source "+file+"; complete -C 'backupd runs -o '; complete -C 'backupd demo -t'").CombinedOutput()
	if err != nil {
		t.Fatalf("fish: %v\n%s", err, out)
	}
	for _, want := range []string{"table", "json", "-time-scale"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("fish completions lack %q:\n%s", want, out)
		}
	}
}

func TestCompletionUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"tcsh"}, {"bash", "zsh"}} {
		var out, errOut bytes.Buffer
		if code := Completion(context.Background(), args, &out, &errOut, OSEnv()); code != exitUsage || !strings.Contains(errOut.String(), "give one shell: bash, zsh, fish") {
			t.Errorf("completion %q: exit %d, %q", args, code, errOut.String())
		}
	}
}

// TestDeprecatedFlagsStillWork: an old name sets the new flag and warns,
// naming the flag to use.
func TestDeprecatedFlagsStillWork(t *testing.T) {
	var errOut bytes.Buffer
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(&errOut)
	scale := fs.Float64("time-scale", 60, "")
	deprecatedFlag(fs, &errOut, "speed", "time-scale")
	if err := fs.Parse([]string{"-speed", "600"}); err != nil || *scale != 600 {
		t.Fatalf("-speed 600: %v, -time-scale %g", err, *scale)
	}
	if want := "backupd demo: warning: -speed is deprecated and will be removed; use -time-scale (the same meaning)\n"; errOut.String() != want {
		t.Errorf("warning %q, want %q", errOut.String(), want)
	}

	srv, _ := fakeDaemon(t, "tok")
	var out bytes.Buffer
	errOut.Reset()
	if code := Status(context.Background(), []string{"-addr", srv.URL, "-json"}, &out, &errOut, OSEnv()); code != 0 {
		t.Fatalf("status -json: exit %d: %s", code, errOut.String())
	}
	var st run.Status
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		t.Errorf("status -json did not print JSON: %v\n%s", err, out.String())
	}
	if !strings.Contains(errOut.String(), "-json is deprecated and will be removed; use -o json") {
		t.Errorf("status -json: no deprecation warning: %q", errOut.String())
	}
}

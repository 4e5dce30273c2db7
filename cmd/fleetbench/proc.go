package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports (the kernel ABI fixes
// it, independent of CONFIG_HZ).
const clockTicks = 100

// Memory is a process's memory as /proc/<pid>/status reports it, in bytes.
type Memory struct {
	HWM     int64 // VmHWM: peak resident set size
	RSS     int64 // VmRSS: resident set size now
	RssAnon int64 // RssAnon: anonymous memory (Go heap, stacks)
	RssFile int64 // RssFile: file-backed pages (binary, the journal's mmap)
}

// readMemory reads /proc/<pid>/status.
func readMemory(pid int) (Memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, fmt.Errorf("reading the memory of process %d: %w", pid, err)
	}
	m, err := parseStatus(data)
	if err != nil {
		return Memory{}, fmt.Errorf("parsing /proc/%d/status: %w", pid, err)
	}
	return m, nil
}

// parseStatus extracts the Vm*/Rss* lines (in kB) of a /proc status file.
func parseStatus(data []byte) (Memory, error) {
	var m Memory
	fields := map[string]*int64{"VmHWM": &m.HWM, "VmRSS": &m.RSS, "RssAnon": &m.RssAnon, "RssFile": &m.RssFile}
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		dst, want := fields[name]
		if !ok || !want {
			continue
		}
		v := strings.Fields(rest)
		if len(v) != 2 || v[1] != "kB" {
			return m, fmt.Errorf("%s: unexpected value %q", name, strings.TrimSpace(rest))
		}
		n, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("%s: %w", name, err)
		}
		*dst = n * 1024
		found++
	}
	if found == 0 {
		return m, fmt.Errorf("no VmHWM, VmRSS, RssAnon or RssFile line")
	}
	return m, nil
}

// readCPU returns the user+system CPU time process pid has used.
func readCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the CPU time of process %d: %w", pid, err)
	}
	d, err := parseStat(data)
	if err != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat: %w", pid, err)
	}
	return d, nil
}

// parseStat returns utime+stime from a /proc/<pid>/stat line. The command
// name (field 2) may hold spaces and parentheses, so fields are counted
// from its closing parenthesis: utime and stime are fields 14 and 15.
func parseStat(data []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name in %q", truncate(string(data), 80))
	}
	f := strings.Fields(string(data[i+1:]))
	const utime, stime = 14 - 3, 15 - 3 // index after ")": field 3 is f[0]
	if len(f) <= stime {
		return 0, fmt.Errorf("only %d fields after the command name", len(f))
	}
	var ticks int64
	for _, k := range []int{utime, stime} {
		n, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("field %d: %w", k+3, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

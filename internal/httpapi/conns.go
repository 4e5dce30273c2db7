package httpapi

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/backupd/backupd/internal/clock"
)

// DefaultMaxConns is how many client connections the server holds open at
// once. Prometheus, probes and the CLI need a handful; the cap exists so that
// a scanner or a misbehaving client cannot take the process's file
// descriptors (which the journal and the Atlas client also need) or grow its
// memory with connections that do nothing.
const DefaultMaxConns = 512

// connLimiter caps the connections a server holds. When a new connection
// arrives at the cap, the connection that has been doing nothing the longest
// (idle between keep-alive requests, or accepted and never sent a request)
// is closed to make room, so a flood of idle connections cannot lock out a
// probe or a scrape. Only when every held connection is serving a request is
// the new one refused (closed at once); the server's read and write
// timeouts bound how long that can last.
type connLimiter struct {
	max int
	clk clock.Clock

	mu      sync.Mutex
	conns   map[net.Conn]connInfo
	evicted uint64        // idle connections closed to make room
	refused uint64        // new connections closed because all were busy
	changed chan struct{} // closed and replaced at every change (tests wait on it)
}

type connInfo struct {
	state http.ConnState
	since time.Time // when it entered state
}

func newConnLimiter(max int, clk clock.Clock) *connLimiter {
	if max <= 0 {
		max = DefaultMaxConns
	}
	return &connLimiter{max: max, clk: clk, conns: make(map[net.Conn]connInfo), changed: make(chan struct{})}
}

// admit registers c, making room by closing the longest-idle connection when
// the cap is reached. It reports false (and closes c) when nothing could be
// evicted.
func (l *connLimiter) admit(c net.Conn) bool {
	l.mu.Lock()
	var victim net.Conn
	if len(l.conns) >= l.max {
		var oldest time.Time
		for vc, info := range l.conns {
			if info.state != http.StateIdle && info.state != http.StateNew {
				continue
			}
			if victim == nil || info.since.Before(oldest) {
				victim, oldest = vc, info.since
			}
		}
		if victim == nil {
			l.refused++
			l.mu.Unlock()
			_ = c.Close()
			return false
		}
		delete(l.conns, victim)
		l.evicted++
	}
	l.conns[c] = connInfo{state: http.StateNew, since: l.clk.Now()}
	l.notifyLocked()
	l.mu.Unlock()
	if victim != nil {
		_ = victim.Close() // the server sees the error and reports StateClosed
	}
	return true
}

// track is the http.Server's ConnState hook.
func (l *connLimiter) track(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch state {
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
	default:
		if _, ok := l.conns[c]; ok {
			l.conns[c] = connInfo{state: state, since: l.clk.Now()}
		}
	}
	l.notifyLocked()
}

func (l *connLimiter) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// states counts the held connections by state, and returns the channel that
// is closed at the next change.
func (l *connLimiter) states() (map[http.ConnState]int, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := make(map[http.ConnState]int)
	for _, info := range l.conns {
		n[info.state]++
	}
	return n, l.changed
}

// ConnStats are the connection limiter's counters.
type ConnStats struct {
	Open    int    // connections held now
	Max     int    // the cap
	Evicted uint64 // idle connections closed to make room for new ones
	Refused uint64 // new connections closed because every held one was busy
}

func (l *connLimiter) stats() ConnStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return ConnStats{Open: len(l.conns), Max: l.max, Evicted: l.evicted, Refused: l.refused}
}

// limitListener applies a connLimiter to every accepted connection.
type limitListener struct {
	net.Listener
	lim *connLimiter
}

func (ln limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ln.lim.admit(c) {
			return c, nil
		}
	}
}

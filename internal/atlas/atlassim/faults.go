package atlassim

import (
	"errors"
	"time"
)

// Faults inject the failures a client must survive. They apply to
// authenticated /api/atlas/v2 requests only (not the token endpoint and not
// the unauthenticated first leg of a digest handshake).
type Faults struct {
	// ErrorRate is the probability that a request fails with a 5xx before
	// anything is applied.
	ErrorRate float64
	// ErrorStatus is the status of injected errors: 500 (UNEXPECTED_ERROR) or
	// 503 (SERVICE_UNAVAILABLE, with Retry-After: 1). Zero picks one of the
	// two at random for each injected error.
	ErrorStatus int
	// Latency delays a request on the simulator's clock before it is handled.
	Latency time.Duration
	// LatencyRate is the probability that a request is delayed; zero with a
	// positive Latency delays every request.
	LatencyRate float64
	// DropAfterApplyRate is the probability that a successful POST is applied
	// and then its connection dropped (panic(http.ErrAbortHandler)), so the
	// client cannot know the outcome.
	DropAfterApplyRate float64
	// HugeAnswerRate is the probability that a successful answer is followed
	// by HugeAnswerPad bytes of whitespace, without a Content-Length: still
	// JSON, but larger than any answer or listing the client accepts
	// (docs/atlas-client.md, "Answer bounds"). A POST is applied first.
	HugeAnswerRate float64
}

// HugeAnswerPad is the padding of a huge answer: more than the client's
// largest bound (a listing's 16 MiB).
const HugeAnswerPad = 17 << 20

// ErrDropped is returned (wrapped) by Transport when the simulator dropped
// the connection after applying a request.
var ErrDropped = errors.New("atlassim: connection dropped after the request was applied")

// SetFaults replaces the fault knobs; the zero Faults turns injection off.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Burst429 makes the next n authenticated API requests fail with 429
// RATE_LIMITED and a Retry-After of retryAfter (rounded up to seconds).
func (s *Sim) Burst429(n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.burst429 = max(n, 0)
	s.burstRetryAfter = max(retryAfter, 0)
}

// FailNextSnapshots makes the next n on-demand snapshots end failed.
func (s *Sim) FailNextSnapshots(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failSnapshots = max(n, 0)
}

// FailNextExports makes the next n export jobs end Failed (with a
// stateReason) or, when cancelled is true, Cancelled.
func (s *Sim) FailNextExports(n int, cancelled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failExports = max(n, 0)
	s.cancelExports = cancelled
}

// FailNextRestores makes the next n flex restore jobs end FAILED.
func (s *Sim) FailNextRestores(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failRestores = max(n, 0)
}

// chance draws from the fault generator; callers hold s.mu.
func (s *Sim) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	if p >= 1 {
		return true
	}
	return s.faultRN.Float64() < p
}

// Call is one request as the simulator saw it.
type Call struct {
	At        time.Time
	Op        string // operation name, e.g. take_snapshot; "" for unknown paths
	Method    string
	Path      string
	Status    int // 0 when the client went away during injected latency
	ProjectID string
	// Dropped is set when the request was applied and its connection dropped.
	Dropped bool
	// Huge is set when the answer was padded past the client's bounds.
	Huge bool
	// Received is when the request arrived, before any injected latency
	// (At is when it was answered). Rate checks of a client use it.
	Received time.Time
	// RetryAfter is the Retry-After sent with a 429 or 503 answer.
	RetryAfter time.Duration
	// Who is the service account client ID or API public key the request
	// authenticated as ("" when it did not): with one credential per
	// replica, tests count each replica's writes. Never a secret.
	Who string
}

// maxCallLog bounds the call log of a long-running standalone simulator.
const maxCallLog = 10000

// Calls returns how many authenticated requests reached operation op
// (including ones answered with injected faults, 4xx or 429). The digest
// handshake's unauthenticated first leg is not counted; CallLog shows it.
// Every token endpoint request counts under "token".
func (s *Sim) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// CallLog returns the most recent requests (up to 10000), oldest first.
func (s *Sim) CallLog() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.callLog[max(0, len(s.callLog)-maxCallLog):]...)
}

func (s *Sim) recordLocked(c Call, counted bool) {
	if counted && c.Op != "" {
		s.calls[c.Op]++
	}
	s.callLog = append(s.callLog, c)
	if len(s.callLog) > 2*maxCallLog {
		s.callLog = append([]Call(nil), s.callLog[len(s.callLog)-maxCallLog:]...)
	}
}

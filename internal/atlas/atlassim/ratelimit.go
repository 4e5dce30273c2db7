package atlassim

import (
	"math"
	"time"
)

// tokenBucket is Atlas's rate limiter: each request takes one token, tokens
// refill continuously up to capacity. It is computed lazily from the clock.
type tokenBucket struct {
	capacity float64
	perSec   float64
	tokens   float64
	last     time.Time
}

func newTokenBucket(capacity, refillPerMinute int, now time.Time) *tokenBucket {
	if refillPerMinute <= 0 {
		refillPerMinute = capacity
	}
	return &tokenBucket{
		capacity: float64(capacity),
		perSec:   float64(refillPerMinute) / 60,
		tokens:   float64(capacity),
		last:     now,
	}
}

// take consumes one token if there is one. It returns the whole tokens left
// and, when refused, how long until a token is available (rounded up to a
// whole second, at least one, as Retry-After carries seconds).
func (b *tokenBucket) take(now time.Time) (remaining int, retryAfter time.Duration, ok bool) {
	if now.After(b.last) {
		b.tokens = math.Min(b.capacity, b.tokens+now.Sub(b.last).Seconds()*b.perSec)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return int(b.tokens), 0, true
	}
	secs := math.Ceil((1 - b.tokens) / b.perSec)
	return 0, time.Duration(max(secs, 1)) * time.Second, false
}

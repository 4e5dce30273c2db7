package policy

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

const day = 24 * time.Hour

// ParseDuration accepts Go duration syntax ("90s", "2h30m") plus a leading
// day count ("90d", "1d12h"), because retention-style values are naturally
// written in days.
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	neg := false
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		neg, s = true, rest
	} else if rest, ok := strings.CutPrefix(s, "+"); ok {
		s = rest
	}
	var total time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil || strings.ContainsAny(s[:i], "eExXpP_iInN") || n < 0 {
			return 0, errors.New("invalid duration " + strconv.Quote(orig))
		}
		days := n * float64(day)
		if days >= math.MaxInt64 {
			return 0, errors.New("duration " + strconv.Quote(orig) + " is too long")
		}
		total = time.Duration(days)
		s = s[i+1:]
		if s == "" {
			if neg {
				total = -total
			}
			return total, nil
		}
	}
	rest, err := time.ParseDuration(s)
	if err != nil || rest < 0 || strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		return 0, errors.New("invalid duration " + strconv.Quote(orig))
	}
	if total > math.MaxInt64-rest {
		return 0, errors.New("duration " + strconv.Quote(orig) + " is too long")
	}
	total += rest
	if neg {
		total = -total
	}
	return total, nil
}

// FormatDuration renders d the way users write it: whole days as "90d",
// else Go syntax without zero tails ("15m", "2h30m", "1m30s").
func FormatDuration(d time.Duration) string {
	if d > 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

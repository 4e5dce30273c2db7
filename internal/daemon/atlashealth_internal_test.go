package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/clock"
)

// Which answers count as Atlas failing: no answer, 5xx, 401/403 do; a 429
// neither fails nor heals; any other answer (404, 409) proves Atlas up.
func TestAtlasHealthClassifiesAnswers(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC))
	for _, tc := range []struct {
		name     string
		codes    []int
		wantDown bool
	}{
		{"transport errors", []int{0, 0}, true},
		{"503s", []int{503, 500}, true},
		{"credentials refused", []int{401}, true},
		{"forbidden", []int{403}, true},
		{"a 404 ends the outage", []int{503, 404}, false},
		{"a 409 ends the outage", []int{0, 409}, false},
		{"429 does not end it", []int{503, 429}, true},
		{"429 alone is no outage", []int{429, 429}, false},
		{"a success ends it", []int{503, 200}, false},
		{"unreadable 200s (a proxy's page)", []int{-200, -200}, true},
		{"a readable 200 ends that", []int{-200, 200}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &atlasHealth{clk: clk}
			for _, c := range tc.codes {
				// -200 stands for a 200 whose body could not be read.
				h.observe(atlas.RequestInfo{Operation: "get_snapshot", StatusCode: max(c, -c), Undecodable: c < 0})
			}
			if err := h.err(); err != nil {
				t.Fatalf("outage reported before the grace period: %v", err)
			}
			clk.Advance(atlasOutageGrace)
			err := h.err()
			if (err != nil) != tc.wantDown {
				t.Fatalf("err after %s = %v, want down %v", atlasOutageGrace, err, tc.wantDown)
			}
			if err != nil && !strings.Contains(err.Error(), "get_snapshot") {
				t.Fatalf("err = %v, want the failing operation named", err)
			}
		})
	}
}

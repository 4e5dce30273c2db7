package atlas

import (
	"net/http"
	"testing"
	"time"

	"github.com/backupd/backupd/internal/clock"
)

func TestHookMeasuresDurationOnInjectedClock(t *testing.T) {
	fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	fa := newFakeAtlas(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fc.Advance(250 * time.Millisecond) // Atlas takes a quarter second
		writeAPIError(w, 404, CodeSnapshotNotFound, "no such snapshot")
	}))
	var got []RequestInfo
	c := newTestClient(t, fa, func(cfg *Config) {
		cfg.Clock = fc
		cfg.Hook = func(i RequestInfo) { got = append(got, i) }
	})
	_, err := c.Snapshots.Get(t.Context(), testProject, "prod", testSnapshot, KindShardedCluster)
	if !IsNotFound(err) || !IsCode(err, CodeSnapshotNotFound) {
		t.Fatalf("err %v", err)
	}
	want := []RequestInfo{
		{Operation: OpFetchToken, Method: "POST", StatusCode: 200, Attempt: 1},
		{Operation: OpGetShardedSnapshot, Method: "GET", StatusCode: 404, ErrorCode: CodeSnapshotNotFound,
			Duration: 250 * time.Millisecond, Attempt: 1, ProjectID: testProject, Priority: PriorityUrgent},
	}
	if len(got) != len(want) {
		t.Fatalf("hook calls %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("hook %d = %+v\nwant   %+v", i, got[i], want[i])
		}
	}
}

package atlas

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// An answer backupd cannot read fails the call, whatever its status said:
// the hook reports it Undecodable (it was counted as a 200), the error names
// what was wrong, GETs are retried and POSTs are to be reconciled.
func TestUnreadableAnswersFailAndAreReportedAsSuch(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		{"truncated", `{"id":"` + testSnapshot + `","status":"comp`, "unexpected end of JSON input"},
		{"mistyped", `{"id":"` + testSnapshot + `","status":7}`, "cannot unmarshal number"},
		{"non-hex id", `{"id":"not-a-snapshot-id","status":"completed"}`, `field id "not-a-snapshot-id" must be 24 lowercase hexadecimal digits`},
		{"no id", `{"status":"completed"}`, `field id "" must be 24 lowercase hexadecimal digits`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", MediaSnapshots)
					_, _ = w.Write([]byte(tc.body))
				})
				var mu sync.Mutex
				var infos []RequestInfo
				c := newTestClient(t, newFakeAtlas(t, api), func(cfg *Config) {
					cfg.Hook = func(i RequestInfo) {
						mu.Lock()
						defer mu.Unlock()
						if i.Operation != OpFetchToken {
							infos = append(infos, i)
						}
					}
				})
				_, err := c.Snapshots.Get(t.Context(), testProject, "prod", testSnapshot, "")
				e, ok := AsError(err)
				if !ok || e.StatusCode != 200 || e.OutcomeUnknown || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "could not be read") {
					t.Fatalf("GET: %v, want a 200 that could not be read (%s)", err, tc.want)
				}
				mu.Lock()
				n := len(infos)
				for _, i := range infos {
					if !i.Undecodable || i.StatusCode != 200 {
						t.Errorf("hook saw %+v, want Undecodable", i)
					}
				}
				infos = nil
				mu.Unlock()
				if n != e.Attempts || n < 2 {
					t.Errorf("%d attempts reported for %d made, want the GET retried", n, e.Attempts)
				}

				_, err = c.Snapshots.Take(t.Context(), testProject, "prod", OnDemandSnapshotRequest{Description: "x"})
				if !OutcomeUnknown(err) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("POST: %v, want outcome unknown (%s)", err, tc.want)
				}
				mu.Lock()
				defer mu.Unlock()
				if len(infos) != 1 || !infos[0].Undecodable {
					t.Errorf("POST hook calls %+v, want one Undecodable attempt", infos)
				}
			})
		})
	}
}

// A dedicated restore job's answer is checked field by field: ids the run
// sends back and the target it matches on must be well formed, and the
// error names the field and the rule it broke.
func TestRestoreJobAnswerChecks(t *testing.T) {
	ok := `"id":"` + testSnapshot + `","snapshotId":"` + testSnapshot + `"`
	cases := []struct{ name, body, want string }{
		{"bad target project", `{` + ok + `,"targetGroupId":"X"}`, `field targetGroupId "X" must be empty or 24 lowercase hexadecimal digits`},
		{"bad target name", `{` + ok + `,"targetClusterName":"-x"}`, `field targetClusterName "-x" must match ^[a-zA-Z0-9][a-zA-Z0-9-]*$`},
		{"bad delivery", `{` + ok + `,"deliveryType":"fax"}`, `field deliveryType "fax" must be automated, download or pointInTime`},
		{"bad snapshot id", `{"id":"` + testSnapshot + `","snapshotId":"s1"}`, `field snapshotId "s1" must be empty or 24 lowercase hexadecimal digits`},
		{"in a page", `{"results":[{` + ok + `},{"id":"nope"}],"totalCount":2}`, `results[1]: field id "nope"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", MediaSnapshots)
					_, _ = w.Write([]byte(tc.body))
				})
				c := newTestClient(t, newFakeAtlas(t, api))
				var err error
				if strings.Contains(tc.body, "results") {
					_, err = c.Restores.List(t.Context(), testProject, "prod")
				} else {
					_, err = c.Restores.Get(t.Context(), testProject, "prod", testSnapshot)
				}
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("err %v, want %q", err, tc.want)
				}
			})
		})
	}
}

// Create refuses bad arguments before sending anything, naming the field.
func TestRestoreCreateArgs(t *testing.T) {
	c := newTestClient(t, newFakeAtlas(t, http.NotFoundHandler()))
	good := RestoreJobRequest{DeliveryType: DeliveryAutomated, SnapshotID: testSnapshot, TargetClusterName: "scratch", TargetGroupID: testProject}
	cases := []struct {
		name  string
		edit  func(*RestoreJobRequest)
		field string
	}{
		{"snapshot", func(r *RestoreJobRequest) { r.SnapshotID = "x" }, "req.snapshotId"},
		{"target project", func(r *RestoreJobRequest) { r.TargetGroupID = "" }, "req.targetGroupId"},
		{"target", func(r *RestoreJobRequest) { r.TargetClusterName = "a b" }, "req.targetClusterName"},
		{"delivery", func(r *RestoreJobRequest) { r.DeliveryType = DeliveryDownloadLinks }, "req.deliveryType"},
	}
	for _, tc := range cases {
		req := good
		tc.edit(&req)
		_, err := c.Restores.Create(t.Context(), testProject, "prod", req)
		var ae *ArgError
		if !errors.As(err, &ae) || ae.Field != tc.field || ae.Rule == "" {
			t.Errorf("%s: %v, want an ArgError on %s", tc.name, err, tc.field)
		}
	}
}

func TestRestoreJobState(t *testing.T) {
	done := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		job  RestoreJob
		want RestoreState
	}{
		{RestoreJob{}, RestoreRunning},
		{RestoreJob{FinishedAt: done}, RestoreSucceeded},
		{RestoreJob{FinishedAt: done, Failed: true}, RestoreFailed},
		{RestoreJob{Cancelled: true}, RestoreCancelled},
		{RestoreJob{Expired: true}, RestoreExpired},
		{RestoreJob{FinishedAt: done, Expired: true}, RestoreExpired},
	}
	for _, tc := range cases {
		if got := tc.job.State(); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.job, got, tc.want)
		}
	}
	if at, ok := ObjectIDTime("65f1b000" + "0000000000000001"); !ok || at.Unix() != 0x65f1b000 {
		t.Errorf("ObjectIDTime = %v %v", at, ok)
	}
	if _, ok := ObjectIDTime("not-an-id"); ok {
		t.Error("ObjectIDTime accepted a non-id")
	}
}

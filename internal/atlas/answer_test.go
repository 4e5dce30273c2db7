package atlas

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
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

package atlas

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// nativeDecoders are the decoders of the native calls, for
// FuzzDecodeResponses; decode is how the fuzzer reads an answer. Each also
// runs the answer's checks, which must not panic and whose message must stay
// short, valid UTF-8 (it quotes at most 80 characters of a value; a held
// secret is scrubbed from it by the client, as from every error).
func nativeDecoders(decode func(any) error) []func() error {
	bounded := func(cerr error) error {
		if cerr != nil && (len(cerr.Error()) > 512 || !utf8.ValidString(cerr.Error())) {
			return fmt.Errorf("answer check message unbounded or invalid (%d bytes)", len(cerr.Error()))
		}
		return nil
	}
	checked := func(v answerChecker) error {
		if err := decode(v); err != nil {
			return err
		}
		return bounded(v.checkAnswer())
	}
	return []func() error{
		func() error { return checked(&BackupSchedule{}) },
		func() error { return checked(&CompliancePolicy{}) },
		func() error {
			var p Page[Snapshot]
			if err := decode(&p); err != nil {
				return err
			}
			for _, sn := range p.Results {
				if err := bounded(checkNativeSnapshot(sn)); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func oneAttempt(cfg *Config) { cfg.MaxAttempts = 1 }

// answer serves every API request with status and body.
func answer(status int, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	})
}

const goodSchedule = `{"clusterId":"` + testProject + `","clusterName":"prod-1","nextSnapshot":"2026-03-02T18:00:00Z",
"referenceHourOfDay":3,"referenceMinuteOfHour":0,"restoreWindowDays":2,
"policies":[{"id":"` + testBucket + `","policyItems":[
 {"id":"` + testSnapshot + `","frequencyType":"hourly","frequencyInterval":6,"retentionUnit":"days","retentionValue":7},
 {"frequencyType":"monthly","frequencyInterval":40,"retentionUnit":"months","retentionValue":12}]}]}`

func TestScheduleDecodes(t *testing.T) {
	c := newTestClient(t, newFakeAtlas(t, answer(200, goodSchedule)))
	s, err := c.Native.Schedule(t.Context(), testProject, "prod-1")
	if err != nil {
		t.Fatal(err)
	}
	items := s.PolicyItems()
	if len(items) != 2 || items[0].Interval() != 6*time.Hour || items[0].Retention() != 7*24*time.Hour ||
		items[1].Interval() != 31*24*time.Hour || items[1].Retention() != 12*31*24*time.Hour ||
		!s.NextSnapshot.Equal(time.Date(2026, 3, 2, 18, 0, 0, 0, time.UTC)) || s.ReferenceHourOfDay != 3 {
		t.Errorf("schedule %+v", s)
	}
}

// TestHostileNativeAnswersAreRejected: answers that break the spec's enums,
// id patterns or required fields fail the call with the field named,
// instead of handing a monitor a promise it would misread.
func TestHostileNativeAnswersAreRejected(t *testing.T) {
	sched := func(items string) string {
		return `{"policies":[{"policyItems":[` + items + `]}]}`
	}
	tests := []struct {
		name, body, want string
		call             func(*Client) error
	}{
		{"schedule without policies", `{"clusterName":"prod-1"}`, "policies is missing", nil},
		{"two policies", `{"policies":[{"policyItems":[]},{"policyItems":[]}]}`, "at most 1", nil},
		{"unknown frequency", sched(`{"frequencyType":"fortnightly","frequencyInterval":1,"retentionUnit":"days","retentionValue":1}`), "policies[0].policyItems[0].frequencyType", nil},
		{"hourly every 5h", sched(`{"frequencyType":"hourly","frequencyInterval":5,"retentionUnit":"days","retentionValue":1}`), "frequencyInterval \"5\"", nil},
		{"weekday 9", sched(`{"frequencyType":"weekly","frequencyInterval":9,"retentionUnit":"days","retentionValue":1}`), "weekly", nil},
		{"retention unit", sched(`{"frequencyType":"daily","frequencyInterval":1,"retentionUnit":"fortnights","retentionValue":1}`), "retentionUnit", nil},
		{"retention zero", sched(`{"frequencyType":"daily","frequencyInterval":1,"retentionUnit":"days","retentionValue":0}`), "retentionValue", nil},
		{"policy item id", sched(`{"id":"../x","frequencyType":"daily","frequencyInterval":1,"retentionUnit":"days","retentionValue":1}`), "policyItems[0].id", nil},
		{"mistyped interval", sched(`{"frequencyType":"daily","frequencyInterval":"1","retentionUnit":"days","retentionValue":1}`), "could not be read", nil},
		{"compliance state", `{"state":"ON"}`, "field state", func(c *Client) error { _, err := c.Native.CompliancePolicy(t.Context(), testProject); return err }},
		{"compliance on-demand item", `{"onDemandPolicyItem":{"frequencyType":"daily","frequencyInterval":1,"retentionUnit":"days","retentionValue":1}}`, "must be ondemand",
			func(c *Client) error { _, err := c.Native.CompliancePolicy(t.Context(), testProject); return err }},
		{"compliance ondemand as scheduled", `{"scheduledPolicyItems":[{"frequencyType":"ondemand","frequencyInterval":0,"retentionUnit":"days","retentionValue":1}]}`, "scheduledPolicyItems[0].frequencyType",
			func(c *Client) error { _, err := c.Native.CompliancePolicy(t.Context(), testProject); return err }},
		{"compliance project id", `{"projectId":"PROJECT"}`, "projectId", func(c *Client) error { _, err := c.Native.CompliancePolicy(t.Context(), testProject); return err }},
		{"snapshot status", `{"results":[{"id":"` + testSnapshot + `","status":"done"}],"totalCount":1}`, "snapshot 0: field status",
			func(c *Client) error {
				_, err := c.Native.Snapshots(t.Context(), testProject, "prod-1", ClusterReplicaSet)
				return err
			}},
		{"snapshot frequency", `{"results":[{"id":"` + testSnapshot + `","status":"completed","frequencyType":"ondemand"}],"totalCount":1}`, "frequencyType",
			func(c *Client) error {
				_, err := c.Native.Snapshots(t.Context(), testProject, "prod-1", ClusterSharded)
				return err
			}},
		{"snapshot type", `{"results":[{"id":"` + testSnapshot + `","status":"completed","snapshotType":"manual"}],"totalCount":1}`, "snapshotType",
			func(c *Client) error {
				_, err := c.Native.Snapshots(t.Context(), testProject, "prod-1", ClusterReplicaSet)
				return err
			}},
		{"snapshot policy item id", `{"results":[{"id":"` + testSnapshot + `","status":"completed","policyItems":["x"]}],"totalCount":1}`, "policyItems[0]",
			func(c *Client) error {
				_, err := c.Native.Snapshots(t.Context(), testProject, "prod-1", ClusterReplicaSet)
				return err
			}},
		{"snapshot size", `{"results":[{"id":"` + testSnapshot + `","status":"completed","storageSizeBytes":-1}],"totalCount":1}`, "storageSizeBytes",
			func(c *Client) error {
				_, err := c.Native.Snapshots(t.Context(), testProject, "prod-1", ClusterReplicaSet)
				return err
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, newFakeAtlas(t, answer(200, tc.body)), oneAttempt)
			call := tc.call
			if call == nil {
				call = func(c *Client) error { _, err := c.Native.Schedule(t.Context(), testProject, "prod-1"); return err }
			}
			err := call(c)
			var e *Error
			if !errors.As(err, &e) || e.StatusCode != 200 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a 200 *Error naming %q", err, tc.want)
			}
		})
	}
}

// TestNativeSnapshotCheckScrubsEchoedSecrets: a listed snapshot that echoes
// the client's secret in a checked field fails without repeating it.
func TestNativeSnapshotCheckScrubsEchoedSecrets(t *testing.T) {
	body := `{"results":[{"id":"` + testSnapshot + `","status":"` + testSecret + `"}],"totalCount":1}`
	c := newTestClient(t, newFakeAtlas(t, answer(200, body)), oneAttempt)
	_, err := c.Native.Snapshots(t.Context(), testProject, "prod-1", ClusterReplicaSet)
	if err == nil || !strings.Contains(err.Error(), "field status") || strings.Contains(err.Error(), testSecret) {
		t.Fatalf("error %v: want the status field named and the secret scrubbed", err)
	}
	var e *Error
	if !errors.As(err, &e) || strings.Contains(fmt.Sprint(e.Err), testSecret) {
		t.Errorf("cause %v repeats the secret", e.Err)
	}
}

// TestCompliancePolicyNotFoundIsNone: Atlas's 404 for a project without a
// policy is an answer; a 404 about the project itself, or any other
// failure, stays an error.
func TestCompliancePolicyNotFoundIsNone(t *testing.T) {
	call := func(h http.Handler) (ProjectCompliance, error) {
		c := newTestClient(t, newFakeAtlas(t, h), oneAttempt)
		return c.Native.CompliancePolicy(t.Context(), testProject)
	}
	none := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeAPIError(w, 404, CodeResourceNotFound, "No Backup Compliance Policy is set")
	})
	if pc, err := call(none); err != nil || pc.InForce {
		t.Errorf("404 RESOURCE_NOT_FOUND = %+v, %v; want none and no error", pc, err)
	}
	for _, code := range []string{CodeGroupNotFound, CodeInvalidGroupID} {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeAPIError(w, 404, code, "no such project") })
		if pc, err := call(h); err == nil || pc.InForce || !IsCode(err, code) {
			t.Errorf("404 %s = %+v, %v; want the error", code, pc, err)
		}
	}
	if _, err := call(answer(500, `{"error":500,"errorCode":"UNEXPECTED_ERROR"}`)); err == nil {
		t.Error("500 answered as no policy")
	}
	pc, err := call(answer(200, `{"projectId":"`+testProject+`","state":"ACTIVE","authorizedEmail":"a@example.com","authorizedUserFirstName":"A","authorizedUserLastName":"B",
		"scheduledPolicyItems":[{"frequencyType":"daily","frequencyInterval":1,"retentionUnit":"weeks","retentionValue":2}],
		"onDemandPolicyItem":{"frequencyType":"ondemand","frequencyInterval":0,"retentionUnit":"days","retentionValue":3}}`))
	if err != nil || !pc.InForce || pc.Policy.State != ComplianceActive || pc.Policy.ScheduledPolicyItems[0].Retention() != 14*24*time.Hour ||
		pc.Policy.OnDemandPolicyItem.Retention() != 3*24*time.Hour {
		t.Errorf("policy = %+v, %v", pc, err)
	}
}

func TestNativeSnapshotsPickTheEndpointOfTheTopology(t *testing.T) {
	rec := &recorder{}
	c := newTestClient(t, newFakeAtlas(t, rec))
	for typ, want := range map[ClusterType]string{
		ClusterReplicaSet: cPath + "/backup/snapshots", ClusterSharded: cPath + "/backup/snapshots/shardedClusters",
		ClusterGeoSharded: cPath + "/backup/snapshots/shardedClusters",
	} {
		if _, err := c.Native.Snapshots(t.Context(), testProject, "prod-1", typ); err != nil {
			t.Fatal(err)
		}
		if got := rec.take(); len(got) != 1 || got[0].Path != want {
			t.Errorf("%s: requests %+v, want one to %s", typ, got, want)
		}
	}
	var ae *ArgError
	if _, err := c.Native.Snapshots(t.Context(), testProject, "prod-1", "SERVERLESS"); !errors.As(err, &ae) || ae.Field != "clusterType" {
		t.Errorf("unknown topology: %v", err)
	}
	if _, err := c.Native.Schedule(t.Context(), testProject, "a/b"); !errors.As(err, &ae) || ae.Field != "cluster" {
		t.Errorf("bad cluster name: %v", err)
	}
	if _, err := c.Native.CompliancePolicy(t.Context(), "x"); !errors.As(err, &ae) || ae.Field != "projectID" {
		t.Errorf("bad project: %v", err)
	}
	if n := len(rec.take()); n != 0 {
		t.Errorf("%d requests for invalid arguments", n)
	}
}

func TestPolicyItemIntervalAndRetention(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		it             PolicyItem
		interval, keep time.Duration
	}{
		{PolicyItem{FrequencyType: FrequencyHourly, FrequencyInterval: 12, RetentionUnit: RetentionDays, RetentionValue: 2}, 12 * time.Hour, 2 * day},
		{PolicyItem{FrequencyType: FrequencyDaily, FrequencyInterval: 1, RetentionUnit: RetentionWeeks, RetentionValue: 3}, day, 21 * day},
		{PolicyItem{FrequencyType: FrequencyWeekly, FrequencyInterval: 6, RetentionUnit: RetentionMonths, RetentionValue: 1}, 7 * day, 31 * day},
		{PolicyItem{FrequencyType: FrequencyYearly, FrequencyInterval: 1, RetentionUnit: RetentionYears, RetentionValue: 2}, 366 * day, 732 * day},
		{PolicyItem{FrequencyType: FrequencyOnDemand, RetentionUnit: "fortnights", RetentionValue: 2}, 0, 0},
		{PolicyItem{FrequencyType: FrequencyDaily, RetentionUnit: RetentionDays, RetentionValue: -1}, day, 0},
		// An hourly interval below 1 is every hour, as the monitor counts it
		// (monitor.maxGap), not "never".
		{PolicyItem{FrequencyType: FrequencyHourly, FrequencyInterval: 0, RetentionUnit: RetentionDays, RetentionValue: 2}, time.Hour, 2 * day},
		{PolicyItem{FrequencyType: FrequencyHourly, FrequencyInterval: -3, RetentionUnit: RetentionDays, RetentionValue: 2}, time.Hour, 2 * day},
	}
	for _, tc := range tests {
		if got := tc.it.Interval(); got != tc.interval {
			t.Errorf("%+v: Interval %s, want %s", tc.it, got, tc.interval)
		}
		if got := tc.it.Retention(); got != tc.keep {
			t.Errorf("%+v: Retention %s, want %s", tc.it, got, tc.keep)
		}
	}
}

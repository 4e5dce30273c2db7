package run

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Every duration in the JSON of a run, an event and a status is a string,
// and runs an older journal wrote with nanoseconds still decode.
func TestDurationsAreStringsInJSON(t *testing.T) {
	r := Run{ID: "0123456789abcdef0123", SnapshotRanFor: 150 * time.Second, SnapshotDoneBy: 160 * time.Second, Spec: Spec{Timeouts: Timeouts{Wait: 30 * time.Minute, Snapshot: 4 * time.Hour, Export: 90 * time.Second}}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"timeouts":{"wait":"30m0s","snapshot":"4h0m0s","export":"1m30s","restore":"0s"}`; !strings.Contains(string(b), want) {
		t.Errorf("run JSON %s lacks %s", b, want)
	}
	if !strings.Contains(string(b), `"snapshotRanFor":"2m30s"`) || !strings.Contains(string(b), `"snapshotDoneBy":"2m40s"`) || strings.Contains(string(b), "exportDoneBy") || strings.Contains(string(b), "exportRanFor") || !strings.Contains(string(b), `"id":"0123456789abcdef0123"`) {
		t.Errorf("run JSON %s: want snapshotRanFor and snapshotDoneBy as strings, the zero exportRanFor and exportDoneBy left out, the other fields kept", b)
	}
	var back Run
	if err := json.Unmarshal(b, &back); err != nil || back.Spec.Timeouts != r.Spec.Timeouts || back.SnapshotRanFor != r.SnapshotRanFor || back.SnapshotDoneBy != r.SnapshotDoneBy || back.ID != r.ID {
		t.Errorf("round trip: %+v, %v", back, err)
	}

	old := `{"id":"0123456789abcdef0123","snapshotRanFor":150000000000,"spec":{"timeouts":{"wait":1800000000000,"snapshot":14400000000000,"export":0,"restore":0}}}`
	var legacy Run
	if err := json.Unmarshal([]byte(old), &legacy); err != nil || legacy.Spec.Timeouts.Wait != 30*time.Minute || legacy.Spec.Timeouts.Snapshot != 4*time.Hour ||
		legacy.SnapshotRanFor != 150*time.Second || legacy.ID != "0123456789abcdef0123" {
		t.Errorf("a journal's nanoseconds: %+v, %v", legacy, err)
	}

	e := Event{Run: r, From: StageSnapshotting, StageDuration: 90 * time.Second}
	b, _ = json.Marshal(e)
	if !strings.Contains(string(b), `"stageDuration":"1m30s"`) {
		t.Errorf("event JSON %s", b)
	}
	var eb Event
	if err := json.Unmarshal(b, &eb); err != nil || eb.StageDuration != 90*time.Second || eb.From != StageSnapshotting {
		t.Errorf("event round trip: %+v, %v", eb, err)
	}

	st := Status{Policies: []PolicyStatus{{Name: "p", Interval: Duration(time.Hour)}}, Monitor: &MonitorStatus{Interval: Duration(24 * time.Hour)}}
	b, _ = json.Marshal(st)
	for _, want := range []string{`"interval":"1h0m0s"`, `"interval":"24h0m0s"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("status JSON %s lacks %s", b, want)
		}
	}
}

func TestDurationRejectsOtherValues(t *testing.T) {
	for _, in := range []string{`"soon"`, `true`, `1.5`, `{}`, `"1h" `} {
		var d Duration
		err := json.Unmarshal([]byte(in), &d)
		if in == `"1h" ` {
			if err != nil || d.D() != time.Hour {
				t.Errorf("%s: %v %v", in, d, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s decoded to %v", in, d)
		}
	}
}

// A restore drill's verify timeout and verify duration survive the journal
// (a verify command restarted after a crash keeps its timeout), as strings.
func TestDrillDurationsRoundTrip(t *testing.T) {
	r := Run{ID: "0123456789abcdef0123", Action: ActionRestoreDrill,
		Spec:  Spec{VerifyCommand: []string{"check"}, Timeouts: Timeouts{Wait: time.Hour, Restore: 6 * time.Hour, Verify: 10 * time.Minute}},
		Drill: Drill{Verification: VerifiedByCommand, VerifyDuration: Duration(3 * time.Second)}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"verify":"10m0s"`, `"verifyDuration":"3s"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("run JSON %s lacks %s", b, want)
		}
	}
	var back Run
	if err := json.Unmarshal(b, &back); err != nil || back.Spec.Timeouts.Verify != 10*time.Minute || back.Drill.VerifyDuration.D() != 3*time.Second {
		t.Errorf("round trip: timeouts %+v, drill %+v, %v", back.Spec.Timeouts, back.Drill, err)
	}
}

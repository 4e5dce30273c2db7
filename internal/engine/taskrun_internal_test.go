package engine

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/backupd/backupd/internal/run"
)

var timeType = reflect.TypeFor[time.Time]()

// fill sets every field of v, recursively, to a value of its own (slices
// get one element), drawn from *n; time.Time is one field.
func fill(v reflect.Value, n *int) {
	*n++
	switch {
	case v.Type() == timeType:
		v.Set(reflect.ValueOf(time.Date(2026, 12, 4, 2, 0, *n, 0, time.UTC)))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), n)
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), n)
	case reflect.String:
		v.SetString(fmt.Sprint("s", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n))
	default:
		panic("fill: add kind " + v.Kind().String())
	}
}

// leaves lists the paths (field indexes; 0 for a slice's element) of
// every field fill sets.
func leaves(t reflect.Type, path []int, out *[][]int) {
	switch {
	case t == timeType:
	case t.Kind() == reflect.Struct:
		for i := range t.NumField() {
			leaves(t.Field(i).Type, append(path[:len(path):len(path)], i), out)
		}
		return
	case t.Kind() == reflect.Slice:
		*out = append(*out, path) // the slice itself: nil
		leaves(t.Elem(), append(path[:len(path):len(path)], 0), out)
		return
	}
	*out = append(*out, path)
}

func at(v reflect.Value, path []int) reflect.Value {
	for _, i := range path {
		if v.Kind() == reflect.Slice {
			v = v.Index(i)
		} else {
			v = v.Field(i)
		}
	}
	return v
}

func filledRun() run.Run {
	var r run.Run
	n := 0
	fill(reflect.ValueOf(&r).Elem(), &n)
	return r
}

// A task keeps its run exactly: every field of run.Run, a new one included,
// comes back from get as set stored it, and a change to any one field after
// another set is seen (the records set reuses when unchanged are not reused
// when one field of theirs differs).
func TestTaskRunKeepsEveryField(t *testing.T) {
	var k taskRun
	full := filledRun()
	k.set(full, nil)
	if got := k.get(); !reflect.DeepEqual(got, full) {
		t.Fatalf("get after set lost fields:\n got %+v\nwant %+v", got, full)
	}
	var paths [][]int
	leaves(reflect.TypeFor[run.Run](), nil, &paths)
	if len(paths) < 60 {
		t.Fatalf("only %d fields found in run.Run", len(paths))
	}
	for _, p := range paths {
		for _, change := range []string{"zero", "other"} {
			k.set(filledRun(), nil)
			want := filledRun()
			f := at(reflect.ValueOf(&want).Elem(), p)
			if change == "zero" {
				f.SetZero()
			} else {
				n := 1000
				fill(f, &n)
			}
			k.set(want, nil)
			if got := k.get(); !reflect.DeepEqual(got, want) {
				t.Errorf("field %v set to %s: got\n%+v\nwant\n%+v", p, change, got, want)
			}
		}
	}
}

// The spec a task keeps is the policy's own copy while it is the same, and
// the run's own otherwise, down to an empty slice against a nil one; a
// snapshot run keeps no restore record.
func TestTaskRunSharesTheSpec(t *testing.T) {
	policy := &run.Spec{RetentionInDays: 7, ExportBucketID: "b", CustomData: []run.Label{{Key: "team", Value: "platform"}},
		Timeouts: run.Timeouts{Wait: time.Hour}}
	r := run.Run{ID: "a", Stage: run.StageExporting, Spec: *policy, ExportJobID: "e"}
	var k taskRun
	k.set(r, policy)
	if k.spec != policy || k.restore != nil {
		t.Fatalf("kept spec %p (policy's %p), restore %v: want the policy's and none", k.spec, policy, k.restore)
	}
	r.Detail = "export 3/40"
	k.set(r, nil)
	if k.spec != policy {
		t.Fatalf("a later set replaced the shared spec")
	}
	own := r
	own.Spec.CustomData = []run.Label{}
	var k2 taskRun
	k2.set(own, policy)
	if k2.spec == policy || k2.get().Spec.CustomData == nil {
		t.Fatalf("a spec with empty customData kept as the policy's (nil customData)")
	}
	var k3 taskRun
	k3.set(run.Run{ID: "b", RestoreJobID: "j"}, nil)
	if k3.restore == nil || k3.get().RestoreJobID != "j" {
		t.Fatalf("restore job id not kept")
	}
}

// The run a task gives back encodes as the run given to it, byte for byte,
// as the journal writes it, for each kind of run.
func TestTaskRunEncodesAsTheRun(t *testing.T) {
	at := time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)
	chain := run.Run{ID: "c0ffee", Policy: "nightly", Action: run.ActionSnapshot, Target: run.Target{ProjectID: "p", Cluster: "rs"},
		Slot: at, ScheduledAt: at.Add(3 * time.Second), Spec: run.Spec{RetentionInDays: 7, ExportBucketID: "b",
			Timeouts: run.Timeouts{Wait: time.Hour, Snapshot: time.Hour, Export: time.Hour}},
		Stage: run.StageExporting, SnapshotID: "s", SnapshotKind: "replicaSet", SnapshotStatus: "completed", SnapshotBytes: 1 << 30,
		ExportBucketID: "b", ExportJobID: "e", ExportState: "InProgress", ExportProgress: "3/40", SnapshotRequested: true, ExportRequested: true,
		SnapshotRanFor: time.Minute, SnapshotDoneBy: 2 * time.Minute, CreatedAt: at, StageStartedAt: at.Add(time.Minute), UpdatedAt: at.Add(2 * time.Minute),
		Stages: []run.StageEntry{{Stage: run.StagePending, At: at}, {Stage: run.StageExporting, At: at.Add(time.Minute)}}}
	drill := run.Run{ID: "d1", Policy: "drill", Action: run.ActionRestoreDrill, Target: run.Target{ProjectID: "p", Cluster: "rs"},
		Spec:  run.Spec{DrillSnapshot: "latest", TargetProjectID: "p", TargetCluster: "scratch", VerifyCommand: []string{"check"}},
		Stage: run.StageVerifying, SnapshotID: "s", RestoreJobID: "j", RestoreStatus: "succeeded", RestoreRequested: true,
		RestoreBaseline: run.RestoreBaseline{Taken: true, NewestJob: at, JobIDs: []string{"j0"}},
		Drill: run.Drill{SnapshotAt: at, JobCreatedAt: at.Add(time.Hour), JobFinishedAt: at.Add(2 * time.Hour), RestoreDone: true,
			TargetIdleAt: at.Add(3 * time.Hour), VerifyAttempts: 1, VerifyStartedAt: at.Add(3 * time.Hour)},
		RestoreRanFor: time.Hour, CreatedAt: at, StageStartedAt: at, UpdatedAt: at}
	flex := run.Run{ID: "f1", Policy: "flex", Action: run.ActionFlexRestore, Target: run.Target{ProjectID: "p", Cluster: "flex0"},
		Spec:  run.Spec{FlexSnapshot: "latest", TargetProjectID: "p", TargetCluster: "t"},
		Stage: run.StageRestoring, FlexSnapshotID: "fs", RestoreJobID: "j", RestoreRequested: true,
		RestoreBaseline: run.RestoreBaseline{Taken: true}, Drill: run.Drill{SnapshotAt: at, JobCreatedAt: at.Add(time.Minute)},
		CreatedAt: at, StageStartedAt: at, UpdatedAt: at}
	for _, r := range []run.Run{chain, drill, flex} {
		want, err := json.Marshal(r)
		must(t, err)
		var k taskRun
		k.set(r, nil)
		got, err := json.Marshal(k.get())
		must(t, err)
		if string(got) != string(want) {
			t.Errorf("%s encodes as\n%s\nwant\n%s", r.Action, got, want)
		}
		if r.Action != run.ActionSnapshot && !strings.Contains(string(got), `"restoreBaseline":{"taken":true`) {
			t.Errorf("%s lost its baseline: %s", r.Action, got)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A task stays within 512 bytes: past that an allocation takes a header
// and the next size class is 576 (docs/benchmarks.md has the heap of a
// parked run, BenchmarkParkedRunBytes).
func TestTaskStaysSmall(t *testing.T) {
	if n := unsafe.Sizeof(task{}); n > 512 {
		t.Fatalf("a task is %d bytes, over 512", n)
	}
}

// A run's poller, allocated per phase, stays in the 112-byte size class.
func TestPollerStaysSmall(t *testing.T) {
	if n := unsafe.Sizeof(poller{}); n > 112 {
		t.Fatalf("a poller is %d bytes, over 112", n)
	}
}

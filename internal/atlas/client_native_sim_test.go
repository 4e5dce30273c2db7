package atlas_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
)

// TestSimNativeMonitorView reads, in virtual time, what a native-backup
// monitor reads: a replica set's and a sharded cluster's scheduled snapshots
// on their endpoints, their schedules, and a stall that leaves the newest
// snapshot older than the schedule promises.
func TestSimNativeMonitorView(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSimFleet(t)
		c := f.client(t)
		ctx := t.Context()
		every4h := atlassim.ScheduleSpec{Items: []atlas.PolicyItem{
			{FrequencyType: atlas.FrequencyHourly, FrequencyInterval: 4, RetentionUnit: atlas.RetentionDays, RetentionValue: 2},
		}}
		for _, name := range []string{"prod", "orders"} {
			if err := f.sim.SetSchedule(simProject, name, every4h); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(3 * 24 * time.Hour)
		for name, typ := range map[string]atlas.ClusterType{"prod": atlas.ClusterReplicaSet, "orders": atlas.ClusterSharded} {
			snaps, err := c.Native.Snapshots(ctx, simProject, name, typ)
			if err != nil {
				t.Fatal(err)
			}
			sch, err := c.Native.Schedule(ctx, simProject, name)
			if err != nil {
				t.Fatal(err)
			}
			interval := sch.PolicyItems()[0].Interval()
			if len(snaps) != 12 || snaps[0].FrequencyType != atlas.FrequencyHourly || time.Since(snaps[0].CreatedAt) > interval ||
				snaps[0].PolicyItems[0] != sch.PolicyItems()[0].ID || !sch.NextSnapshot.After(time.Now()) {
				t.Errorf("%s: %d snapshots, newest %+v, schedule %+v", name, len(snaps), snaps[0], sch)
			}
		}

		if err := f.sim.StallSchedule(simProject, "prod", true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(9 * time.Hour)
		snaps, err := c.Native.Snapshots(ctx, simProject, "prod", atlas.ClusterReplicaSet)
		if err != nil {
			t.Fatal(err)
		}
		sch, err := c.Native.Schedule(ctx, simProject, "prod")
		if err != nil {
			t.Fatal(err)
		}
		if age := time.Since(snaps[0].CreatedAt); age <= sch.PolicyItems()[0].Interval() || !sch.NextSnapshot.Before(time.Now()) {
			t.Errorf("stalled: newest snapshot %s old, next %s (now %s); want older than the interval and a next snapshot in the past",
				age, sch.NextSnapshot, time.Now())
		}
	})
}

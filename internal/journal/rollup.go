package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/backupd/backupd/internal/run"
)

// The rollup is what the evidence report needs of every ended run, kept
// apart from the full run records: one record per (target, policy, UTC
// day of the run's report time), holding the ReportView of each run of
// that day, compactly encoded. The engine's final Put of a run writes it
// in the same transaction as the run's terminal state, so it can never
// disagree with the runs; Prune deletes it by age alone (the report's
// horizon, historyAge), never by the run count limit. A report of a year
// at fleet size therefore reads ~2 KB per cluster and day instead of 3.7
// KB per run, and the count limit that keeps the full runs small no longer
// shortens the evidence.

// ReportTime is when a run counts for the evidence report: its slot, or
// for a manual run, when it was created.
func ReportTime(r run.Run) time.Time {
	if r.Manual {
		return r.CreatedAt
	}
	return r.Slot
}

// ReportView is the part of r the evidence report shows (internal/report
// reads nothing else of a run): identity, slot and outcome, the Atlas ids
// and states, the snapshot's retention and size, the restore's target and
// a drill's record without the verify command's output (which stays in
// the full run while it is held: backupd describe). Of the stage history
// it keeps the entries the report dates things by: when the run first left
// snapshotting (the snapshot completed) and when it began restoring.
func ReportView(r run.Run) run.Run {
	v := run.Run{
		ID: r.ID, Policy: r.Policy, Action: r.Action, Target: r.Target, Slot: r.Slot, ScheduledAt: r.ScheduledAt,
		Manual: r.Manual, CatchUp: r.CatchUp, Stage: r.Stage, Reason: r.Reason, Detail: r.Detail,
		SnapshotID: r.SnapshotID, SnapshotStatus: r.SnapshotStatus, SnapshotBytes: r.SnapshotBytes,
		ExportBucketID: r.ExportBucketID, ExportJobID: r.ExportJobID, ExportState: r.ExportState,
		FlexSnapshotID: r.FlexSnapshotID, RestoreJobID: r.RestoreJobID, RestoreStatus: r.RestoreStatus,
		RestoreRequested: r.RestoreRequested, CreatedAt: r.CreatedAt, FinishedAt: r.FinishedAt,
	}
	v.Spec.RetentionInDays, v.Spec.TargetProjectID, v.Spec.TargetCluster = r.Spec.RetentionInDays, r.Spec.TargetProjectID, r.Spec.TargetCluster
	d := r.Drill
	v.Drill = run.Drill{SnapshotAt: d.SnapshotAt, SourceExportID: d.SourceExportID, JobCreatedAt: d.JobCreatedAt,
		JobFinishedAt: d.JobFinishedAt, Verification: d.Verification, VerifyExitCode: d.VerifyExitCode, VerifyDuration: d.VerifyDuration}
	keep := make([]bool, len(r.Stages))
	for i, e := range r.Stages {
		if e.Stage == run.StageSnapshotting && i+1 < len(r.Stages) {
			keep[i], keep[i+1] = true, true
			break
		}
	}
	for i, e := range r.Stages {
		if e.Stage == run.StageRestoring {
			keep[i] = true
			break
		}
	}
	for i, e := range r.Stages {
		if keep[i] {
			v.Stages = append(v.Stages, e)
		}
	}
	return v
}

// OutcomeQuery selects what Outcomes reads.
type OutcomeQuery struct {
	// From and To bound the runs' report time, [From, To).
	From, To time.Time
	// Keep, when set, skips every (policy, target) it returns false for
	// before anything of theirs is decoded.
	Keep func(policy string, t run.Target) bool
}

// Horizon says which ended runs Outcomes holds.
type Horizon struct {
	// Since: Outcomes holds every run created at or after it that ended
	// (zero: every run the journal ever ended). A journal written before
	// the rollup existed got it at its first open by this version: runs
	// created before then are read from History while they are held.
	Since time.Time
	// PrunedBefore: Prune deleted the outcomes of the days before it (by
	// age); zero when it never did.
	PrunedBefore time.Time
}

// dayOf is the UTC day of t, as days since 1970-01-01, offset so that it
// sorts as an unsigned number.
func dayOf(t time.Time) uint32 {
	return uint32(int32(t.Unix()/86400-boolInt(t.Unix()%86400 < 0))) ^ (1 << 31)
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// dayStart is the first instant of day d.
func dayStart(d uint32) time.Time {
	return time.Unix(int64(int32(d^(1<<31)))*86400, 0).UTC()
}

// rollupPrefix is the key prefix of a target's records, then a policy's.
func rollupPrefix(t run.Target, policy string) []byte {
	return appendComponent(appendComponent(appendComponent(nil, t.ProjectID), t.Cluster), policy)
}

// rollupKey is the key of the record of (t, policy) on day d.
func rollupKey(t run.Target, policy string, d uint32) []byte {
	return binary.BigEndian.AppendUint32(rollupPrefix(t, policy), d)
}

// rollupDayKey is the rollup's day index entry of a record: the day first,
// so Prune finds the oldest days without reading the records.
func rollupDayKey(recordKey []byte) []byte {
	d := recordKey[len(recordKey)-4:]
	return append(bytes.Clone(d), recordKey[:len(recordKey)-4]...)
}

// parseRollupKey splits a record key into its target, policy and day.
func parseRollupKey(k []byte) (run.Target, string, uint32, error) {
	var parts [3]string
	rest := k
	for i := range parts {
		s, n, ok := readComponent(rest)
		if !ok {
			return run.Target{}, "", 0, damagef("rollup key %q is malformed", k)
		}
		parts[i], rest = s, rest[n:]
	}
	if len(rest) != 4 {
		return run.Target{}, "", 0, damagef("rollup key %q is malformed", k)
	}
	return run.Target{ProjectID: parts[0], Cluster: parts[1]}, parts[2], binary.BigEndian.Uint32(rest), nil
}

// readComponent reads one appendComponent-escaped string from k: the string,
// the bytes it took, and whether it was well formed.
func readComponent(k []byte) (string, int, bool) {
	var b []byte
	for i := 0; i < len(k); i++ {
		if k[i] != 0 {
			b = append(b, k[i])
			continue
		}
		if i+1 >= len(k) {
			return "", 0, false
		}
		switch k[i+1] {
		case 0xFF:
			b = append(b, 0)
			i++
		case 0x01:
			return string(b), i + 2, true
		default:
			return "", 0, false
		}
	}
	return "", 0, false
}

// dayRecord is one rollup record: the report views of the runs of one
// (target, policy, day), by report time then ID.
type dayRecord []run.Run

// upsert puts v in place of the run with its ID, or adds it, keeping the
// record's order.
func (d *dayRecord) upsert(v run.Run) {
	if i := slices.IndexFunc(*d, func(o run.Run) bool { return o.ID == v.ID }); i >= 0 {
		(*d)[i] = v
	} else {
		*d = append(*d, v)
	}
	slices.SortFunc(*d, func(a, b run.Run) int {
		if c := ReportTime(a).Compare(ReportTime(b)); c != 0 {
			return c
		}
		return cmpString(string(a.ID), string(b.ID))
	})
}

// remove deletes the run with id; it reports whether there was one.
func (d *dayRecord) remove(id run.ID) bool {
	i := slices.IndexFunc(*d, func(o run.Run) bool { return o.ID == id })
	if i < 0 {
		return false
	}
	*d = slices.Delete(*d, i, i+1)
	return true
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// The record encoding: a version byte, the number of runs, and each run's
// fields in a fixed order. Strings are tagged varints: plain bytes, packed
// lowercase hex (Atlas's and backupd's ids: half the bytes), or an index
// into rollupWords (stages, actions, reasons, Atlas's states: one byte).
// Times are deltas in seconds (and nanoseconds when there are any) from
// the day's start or the run's slot, a few bytes each. rollupWords is
// append-only: an index, once written, means that word for good.
const rollupVersion = 1

var rollupWords = []string{
	"",
	string(run.StagePending), string(run.StageWaiting), string(run.StageSnapshotting), string(run.StageExporting),
	string(run.StageRestoring), string(run.StageVerifying), string(run.StageSucceeded), string(run.StageFailed), string(run.StageSkipped),
	string(run.ActionSnapshot), string(run.ActionExport), string(run.ActionFlexRestore), string(run.ActionRestoreDrill),
	run.ReasonTimeout, run.ReasonSnapshotFailed, run.ReasonExportFailed, run.ReasonExportCancelled, run.ReasonRestoreFailed,
	run.ReasonRestoreCancelled, run.ReasonRestoreExpired, run.ReasonVerifyFailed, run.ReasonNoSnapshot, run.ReasonNotFound,
	run.ReasonAtlasError, run.ReasonOverlap, run.ReasonMissed, run.ReasonNotSupported, run.ReasonShutdown, run.ReasonNoNewSnapshot,
	"completed", "failed", "queued", "inProgress",
	"Successful", "Failed", "Cancelled", "InProgress", "Queued",
	"COMPLETED", "FAILED", "PENDING", "QUEUED", "RESTORING",
	run.VerifiedByCommand, run.VerifiedAtlasOnly,
}

var rollupWordIndex = func() map[string]int {
	m := make(map[string]int, len(rollupWords))
	for i, w := range rollupWords {
		m[w] = i
	}
	return m
}()

type rollupEncoder struct{ b []byte }

func (e *rollupEncoder) uvarint(u uint64) { e.b = binary.AppendUvarint(e.b, u) }
func (e *rollupEncoder) varint(i int64)   { e.b = binary.AppendVarint(e.b, i) }

func (e *rollupEncoder) str(s string) {
	if i, ok := rollupWordIndex[s]; ok {
		e.uvarint(uint64(i)<<2 | 2)
		return
	}
	if isLowerHex(s) {
		e.uvarint(uint64(len(s)/2)<<2 | 1)
		e.b, _ = hex.AppendDecode(e.b, []byte(s)) // isLowerHex: it cannot fail
		return
	}
	e.uvarint(uint64(len(s)) << 2)
	e.b = append(e.b, s...)
}

func isLowerHex(s string) bool {
	if len(s) == 0 || len(s)%2 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Time kinds.
const (
	timeZero = iota
	timeSeconds
	timeNanos
)

func (e *rollupEncoder) time(t, base time.Time) {
	switch {
	case t.IsZero():
		e.b = append(e.b, timeZero)
	case t.Nanosecond() == 0:
		e.b = append(e.b, timeSeconds)
		e.varint(t.Unix() - base.Unix())
	default:
		e.b = append(e.b, timeNanos)
		e.varint(t.Unix() - base.Unix())
		e.uvarint(uint64(t.Nanosecond()))
	}
}

// Flags of a run.
const (
	flagManual = 1 << iota
	flagCatchUp
	flagRestoreRequested
)

// encodeDayRecord encodes the runs of day d (their policy and target are
// the record's key's).
func encodeDayRecord(d uint32, rs dayRecord) []byte {
	e := rollupEncoder{b: make([]byte, 0, 128*len(rs)+8)}
	e.b = append(e.b, rollupVersion)
	e.uvarint(uint64(len(rs)))
	day := dayStart(d)
	for _, r := range rs {
		e.str(string(r.ID))
		e.str(string(r.Action))
		var f byte
		if r.Manual {
			f |= flagManual
		}
		if r.CatchUp {
			f |= flagCatchUp
		}
		if r.RestoreRequested {
			f |= flagRestoreRequested
		}
		e.b = append(e.b, f)
		e.time(r.Slot, day)
		base := r.Slot
		if base.IsZero() {
			base = day
		}
		e.time(r.ScheduledAt, base)
		e.time(r.CreatedAt, base)
		e.time(r.FinishedAt, base)
		e.str(string(r.Stage))
		e.str(r.Reason)
		e.str(r.Detail)
		e.str(r.SnapshotID)
		e.str(r.SnapshotStatus)
		e.varint(r.SnapshotBytes)
		e.varint(int64(r.Spec.RetentionInDays))
		e.str(r.ExportBucketID)
		e.str(r.ExportJobID)
		e.str(r.ExportState)
		e.str(r.FlexSnapshotID)
		e.str(r.RestoreJobID)
		e.str(r.RestoreStatus)
		e.str(r.Spec.TargetProjectID)
		e.str(r.Spec.TargetCluster)
		dr := r.Drill
		e.time(dr.SnapshotAt, base)
		e.str(dr.SourceExportID)
		e.time(dr.JobCreatedAt, base)
		e.time(dr.JobFinishedAt, base)
		e.str(dr.Verification)
		e.varint(int64(dr.VerifyExitCode))
		e.varint(int64(dr.VerifyDuration))
		e.uvarint(uint64(len(r.Stages)))
		for _, s := range r.Stages {
			e.str(string(s.Stage))
			e.time(s.At, base)
		}
	}
	return e.b
}

type rollupDecoder struct {
	b   []byte
	err error
}

func (d *rollupDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("truncated or malformed %s", what)
	}
}

func (d *rollupDecoder) uvarint() uint64 { return readNumber(d, binary.Uvarint) }
func (d *rollupDecoder) varint() int64   { return readNumber(d, binary.Varint) }

// readNumber reads one varint with read (binary.Uvarint or Varint).
func readNumber[T uint64 | int64](d *rollupDecoder, read func([]byte) (T, int)) T {
	v, n := read(d.b)
	if n <= 0 {
		d.fail("number")
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *rollupDecoder) byte() byte {
	if len(d.b) == 0 {
		d.fail("byte")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *rollupDecoder) bytes(n uint64) []byte {
	if uint64(len(d.b)) < n {
		d.fail("string")
		d.b = nil
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *rollupDecoder) str() string {
	tag := d.uvarint()
	n := tag >> 2
	switch tag & 3 {
	case 0:
		return string(d.bytes(n))
	case 1:
		return hex.EncodeToString(d.bytes(n))
	case 2:
		if n >= uint64(len(rollupWords)) {
			d.fail("word")
			return ""
		}
		return rollupWords[n]
	}
	d.fail("string tag")
	return ""
}

func (d *rollupDecoder) time(base time.Time) time.Time {
	switch d.byte() {
	case timeZero:
		return time.Time{}
	case timeSeconds:
		return time.Unix(base.Unix()+d.varint(), 0).UTC()
	case timeNanos:
		sec := base.Unix() + d.varint()
		ns := d.uvarint()
		if ns >= 1e9 {
			d.fail("time")
		}
		return time.Unix(sec, int64(ns)).UTC()
	}
	d.fail("time kind")
	return time.Time{}
}

// decodeDayRecord decodes a record of (t, policy) on day dd; each run
// gets the key's policy and target.
func decodeDayRecord(t run.Target, policy string, dd uint32, p []byte) (dayRecord, error) {
	d := rollupDecoder{b: p}
	if v := d.byte(); v != rollupVersion {
		return nil, damagef("rollup record of %s on %s: version %d, this backupd reads %d", policy, t, v, rollupVersion)
	}
	n := d.uvarint()
	if n > uint64(len(p)) {
		return nil, damagef("rollup record of %s on %s: %d runs in %d bytes", policy, t, n, len(p))
	}
	day := dayStart(dd)
	out := make(dayRecord, 0, n)
	for range n {
		r := run.Run{Policy: policy, Target: t}
		r.ID = run.ID(d.str())
		r.Action = run.Action(d.str())
		f := d.byte()
		r.Manual, r.CatchUp, r.RestoreRequested = f&flagManual != 0, f&flagCatchUp != 0, f&flagRestoreRequested != 0
		r.Slot = d.time(day)
		base := r.Slot
		if base.IsZero() {
			base = day
		}
		r.ScheduledAt = d.time(base)
		r.CreatedAt = d.time(base)
		r.FinishedAt = d.time(base)
		r.Stage = run.Stage(d.str())
		r.Reason = d.str()
		r.Detail = d.str()
		r.SnapshotID = d.str()
		r.SnapshotStatus = d.str()
		r.SnapshotBytes = d.varint()
		r.Spec.RetentionInDays = int(d.varint())
		r.ExportBucketID = d.str()
		r.ExportJobID = d.str()
		r.ExportState = d.str()
		r.FlexSnapshotID = d.str()
		r.RestoreJobID = d.str()
		r.RestoreStatus = d.str()
		r.Spec.TargetProjectID = d.str()
		r.Spec.TargetCluster = d.str()
		r.Drill.SnapshotAt = d.time(base)
		r.Drill.SourceExportID = d.str()
		r.Drill.JobCreatedAt = d.time(base)
		r.Drill.JobFinishedAt = d.time(base)
		r.Drill.Verification = d.str()
		r.Drill.VerifyExitCode = int(d.varint())
		r.Drill.VerifyDuration = run.Duration(d.varint())
		ns := d.uvarint()
		if ns > run.MaxStages {
			d.fail("stage history")
			break
		}
		for range ns {
			st := run.Stage(d.str())
			r.Stages = append(r.Stages, run.StageEntry{Stage: st, At: d.time(base)})
		}
		if d.err != nil {
			break
		}
		out = append(out, r)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("record end")
	}
	if d.err != nil {
		return nil, damagef("rollup record of %s on %s: %v", policy, t, d.err)
	}
	return out, nil
}

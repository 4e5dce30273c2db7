package run

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration that is a string in JSON ("1h30m0s", as
// time.Duration.String writes it), so every duration the API and the CLI's
// JSON output show reads like the config's and no client has to know that
// a bare number would be nanoseconds. Decoding also accepts a number of
// nanoseconds: journals written before durations became strings hold them
// that way.
type Duration time.Duration

// D is the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String is time.Duration's form, "0s" for zero.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string ("90m", "1h30m0s") or, for old
// journals, an integer number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("decode duration: %w", err)
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("decode duration %q: want a Go duration such as \"1h30m0s\": %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("decode duration %s: want a string such as \"1h30m0s\" (or integer nanoseconds): %w", b, err)
	}
	*d = Duration(n)
	return nil
}

// timeoutsJSON is Timeouts as JSON: durations as strings.
type timeoutsJSON struct {
	Wait     Duration `json:"wait"`
	Snapshot Duration `json:"snapshot"`
	Export   Duration `json:"export"`
	Restore  Duration `json:"restore"`
	Verify   Duration `json:"verify,omitempty"`
}

// MarshalJSON writes each timeout as a duration string ("4h0m0s").
func (t Timeouts) MarshalJSON() ([]byte, error) {
	return json.Marshal(timeoutsJSON{Duration(t.Wait), Duration(t.Snapshot), Duration(t.Export), Duration(t.Restore), Duration(t.Verify)})
}

// UnmarshalJSON reads strings, or the nanoseconds older journals hold.
func (t *Timeouts) UnmarshalJSON(b []byte) error {
	var v timeoutsJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("decode timeouts: %w", err)
	}
	*t = Timeouts{Wait: v.Wait.D(), Snapshot: v.Snapshot.D(), Export: v.Export.D(), Restore: v.Restore.D(), Verify: v.Verify.D()}
	return nil
}

// eventJSON is Event as JSON: its stage duration as a string.
type eventJSON struct {
	Run           Run       `json:"run"`
	From          Stage     `json:"from"`
	At            time.Time `json:"at"`
	StageDuration Duration  `json:"stageDuration"`
	Note          string    `json:"note,omitempty"`
}

// MarshalJSON writes the stage duration as a string ("1m30s").
func (e Event) MarshalJSON() ([]byte, error) {
	return json.Marshal(eventJSON{e.Run, e.From, e.At, Duration(e.StageDuration), e.Note})
}

// UnmarshalJSON reads what MarshalJSON writes (or nanoseconds).
func (e *Event) UnmarshalJSON(b []byte) error {
	var v eventJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("decode run event: %w", err)
	}
	*e = Event{Run: v.Run, From: v.From, At: v.At, StageDuration: v.StageDuration.D(), Note: v.Note}
	return nil
}

// runJSON overlays Run's durations with strings; the embedded plain Run
// carries every other field (the outer fields win by depth).
type plainRun Run

type runJSON struct {
	*plainRun
	SnapshotRanFor Duration `json:"snapshotRanFor,omitempty"`
	ExportRanFor   Duration `json:"exportRanFor,omitempty"`
	RestoreRanFor  Duration `json:"restoreRanFor,omitempty"`
	SnapshotDoneBy Duration `json:"snapshotDoneBy,omitempty"`
	ExportDoneBy   Duration `json:"exportDoneBy,omitempty"`
	RestoreDoneBy  Duration `json:"restoreDoneBy,omitempty"`
}

// MarshalJSON writes the run with its *RanFor and *DoneBy durations as strings.
func (r Run) MarshalJSON() ([]byte, error) {
	return json.Marshal(runJSON{plainRun: (*plainRun)(&r),
		SnapshotRanFor: Duration(r.SnapshotRanFor), ExportRanFor: Duration(r.ExportRanFor), RestoreRanFor: Duration(r.RestoreRanFor),
		SnapshotDoneBy: Duration(r.SnapshotDoneBy), ExportDoneBy: Duration(r.ExportDoneBy), RestoreDoneBy: Duration(r.RestoreDoneBy)})
}

// UnmarshalJSON reads strings, or the nanoseconds older journals hold.
func (r *Run) UnmarshalJSON(b []byte) error {
	v := runJSON{plainRun: (*plainRun)(r)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	r.SnapshotRanFor, r.ExportRanFor, r.RestoreRanFor = v.SnapshotRanFor.D(), v.ExportRanFor.D(), v.RestoreRanFor.D()
	r.SnapshotDoneBy, r.ExportDoneBy, r.RestoreDoneBy = v.SnapshotDoneBy.D(), v.ExportDoneBy.D(), v.RestoreDoneBy.D()
	return nil
}

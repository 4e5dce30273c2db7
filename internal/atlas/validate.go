package atlas

import (
	"fmt"
	"regexp"
	"strconv"
	"sync"
)

// Patterns from the OpenAPI spec's path parameters and request schemas.
// They are checked before sending so a typo fails fast with the field named,
// instead of costing a rate-limit token and a vague 400/404.
var (
	hexIDPattern       = regexp.MustCompile(`^[a-f0-9]{24}$`)
	clusterNamePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9-]*$`)
)

// ArgError reports an argument rejected before any request was sent.
type ArgError struct {
	Operation string // the operation that refused to start
	Field     string // e.g. "projectID", "snapshotID", "req.retentionInDays"
	Value     string // the offending value, quoted in Error (never a secret)
	Rule      string // what the value must satisfy
}

// Error renders `atlas OP: invalid FIELD "VALUE": RULE`.
func (e *ArgError) Error() string {
	return fmt.Sprintf("atlas %s: invalid %s %s: %s", e.Operation, e.Field, strconv.Quote(sanitize(e.Value, 80)), e.Rule)
}

func checkID(op, field, v string) error {
	if !hexIDPattern.MatchString(v) {
		return &ArgError{Operation: op, Field: field, Value: v, Rule: "must be 24 lowercase hexadecimal digits (^[a-f0-9]{24}$)"}
	}
	return nil
}

func checkClusterName(op, field, v string) error {
	if !clusterNamePattern.MatchString(v) {
		return &ArgError{Operation: op, Field: field, Value: v, Rule: "must match ^[a-zA-Z0-9][a-zA-Z0-9-]*$ (letters, digits, hyphens; not starting with a hyphen)"}
	}
	return nil
}

func checkRestoreTarget(op, field, v string) error {
	if !restoreTargetPattern().MatchString(v) {
		return &ArgError{Operation: op, Field: field, Value: v, Rule: `must be 1-64 letters, digits or -_.(),:&@+'`}
	}
	return nil
}

// firstErr returns the first non-nil error, so validations read as a list.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// restoreTargetPattern is compiled on first use: its Unicode classes cost ~1.3 MB of heap,
// which a daemon without flex restore policies should not carry.
var restoreTargetPattern = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[\p{L}\p{N}\-_.(),:&@+']{1,64}$`)
})

// answerChecker is a decoded answer that can tell whether it carries what
// its callers rely on. The ids of snapshots and jobs are sent back to Atlas
// in later paths and requests: an answer with a malformed one is as
// unreadable as a truncated body, and is treated as such (retried, counted
// and reported as a decode error) instead of being tracked.
type answerChecker interface {
	checkAnswer() error
}

// answerIDs checks ids an answer carries; optional ones may be empty.
func answerIDs(required [][2]string, optional ...[2]string) error {
	for _, f := range required {
		if !hexIDPattern.MatchString(f[1]) {
			return fmt.Errorf("field %s %s must be 24 lowercase hexadecimal digits (^[a-f0-9]{24}$)", f[0], strconv.Quote(sanitize(f[1], 80)))
		}
	}
	for _, f := range optional {
		if f[1] != "" && !hexIDPattern.MatchString(f[1]) {
			return fmt.Errorf("field %s %s must be empty or 24 lowercase hexadecimal digits (^[a-f0-9]{24}$)", f[0], strconv.Quote(sanitize(f[1], 80)))
		}
	}
	return nil
}

func (s *Snapshot) checkAnswer() error { return answerIDs([][2]string{{"id", s.ID}}) }

func (j *ExportJob) checkAnswer() error {
	return answerIDs([][2]string{{"id", j.ID}}, [2]string{"snapshotId", j.SnapshotID}, [2]string{"exportBucketId", j.ExportBucketID})
}

func (s *FlexSnapshot) checkAnswer() error { return answerIDs([][2]string{{"id", s.ID}}) }

func (j *FlexRestoreJob) checkAnswer() error {
	return answerIDs([][2]string{{"id", j.ID}}, [2]string{"snapshotId", j.SnapshotID})
}

func (j *RestoreJob) checkAnswer() error {
	if err := answerIDs([][2]string{{"id", j.ID}}, [2]string{"snapshotId", j.SnapshotID}, [2]string{"targetGroupId", j.TargetGroupID}); err != nil {
		return err
	}
	if j.TargetClusterName != "" && !clusterNamePattern.MatchString(j.TargetClusterName) {
		return fmt.Errorf("field targetClusterName %s must match ^[a-zA-Z0-9][a-zA-Z0-9-]*$", strconv.Quote(sanitize(j.TargetClusterName, 80)))
	}
	switch j.DeliveryType {
	case "", DeliveryAutomated, DeliveryDownloadLinks, DeliveryPointInTime:
	default:
		return fmt.Errorf("field deliveryType %s must be automated, download or pointInTime", strconv.Quote(sanitize(string(j.DeliveryType), 80)))
	}
	return nil
}

// checkAnswer checks every item of a page that can be checked, naming the
// first bad one by its index.
func (p *Page[T]) checkAnswer() error {
	for i := range p.Results {
		if c, ok := any(&p.Results[i]).(answerChecker); ok {
			if err := c.checkAnswer(); err != nil {
				return fmt.Errorf("results[%d]: %w", i, err)
			}
		}
	}
	return nil
}

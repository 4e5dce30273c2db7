package engine

import (
	"net/http"
	"testing"

	"github.com/backupd/backupd/internal/atlas"
)

// TestClassifyOverBoundAnswers: an Atlas answer or listing past the client's
// bounds is Atlas being unavailable (read again after the poll backoff, not
// at once and not a failed run), and a POST's is still an unknown outcome to
// reconcile by listing.
func TestClassifyOverBoundAnswers(t *testing.T) {
	answer := &atlas.BoundError{Operation: atlas.OpGetSnapshot, Limit: atlas.MaxObjectBytes, Unit: "bytes"}
	listing := &atlas.BoundError{Operation: atlas.OpListSnapshots, Listing: true, Limit: atlas.MaxListingPages, Unit: "pages"}
	for name, tc := range map[string]struct {
		err  error
		want errKind
	}{
		"GET answer":  {&atlas.Error{Operation: atlas.OpGetSnapshot, Method: http.MethodGet, StatusCode: 200, Err: answer}, errTransient},
		"listing":     {&atlas.Error{Operation: atlas.OpListSnapshots, Method: http.MethodGet, Err: listing}, errTransient},
		"POST answer": {&atlas.Error{Operation: atlas.OpTakeSnapshot, Method: http.MethodPost, StatusCode: 200, Err: answer, OutcomeUnknown: true}, errUnknown},
	} {
		if got := classify(t.Context(), tc.err); got != tc.want {
			t.Errorf("%s: classify = %d, want %d", name, got, tc.want)
		}
	}
}

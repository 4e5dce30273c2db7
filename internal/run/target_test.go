package run

import (
	"strings"
	"testing"
	"unsafe"
)

// Two targets with the same names from two listings (distinct copies)
// share one copy of each name once interned, and stay equal.
func TestTargetInterned(t *testing.T) {
	a := Target{ProjectID: strings.Clone("6a00000000000000000000b2"), Cluster: strings.Clone("prod-a")}
	b := Target{ProjectID: strings.Clone(a.ProjectID), Cluster: strings.Clone(a.Cluster)}
	ia, ib := a.Interned(), b.Interned()
	if ia != a || ib != b {
		t.Fatalf("interned %v %v, want %v", ia, ib, a)
	}
	if unsafe.StringData(ia.ProjectID) != unsafe.StringData(ib.ProjectID) || unsafe.StringData(ia.Cluster) != unsafe.StringData(ib.Cluster) {
		t.Error("interned targets do not share their names")
	}
}

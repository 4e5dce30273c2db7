package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/backupd/backupd/internal/run"
)

// backupd status says which replica acts (issue 16 item 3); without ha:
// there is no such line.
func TestStatusShowsLeadership(t *testing.T) {
	var b bytes.Buffer
	writeStatus(&b, run.Status{Version: "dev", HA: &run.HAStatus{Identity: "pod-a", Lease: "apps/backupd-leader", Role: run.RoleStandby, Leader: "pod-b"}})
	if want := "leader election on lease apps/backupd-leader: standby (pod-a), leader is pod-b\n"; !strings.Contains(b.String(), want) {
		t.Fatalf("status lacks %q:\n%s", want, b.String())
	}
	b.Reset()
	writeStatus(&b, run.Status{Version: "dev"})
	if strings.Contains(b.String(), "leader election") {
		t.Fatalf("status without ha: mentions leader election:\n%s", b.String())
	}
}

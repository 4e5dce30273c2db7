package policy

import (
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/run"
)

// The view types are the redacted, display form of a Config: the YAML key
// names, durations as text, secrets as "[redacted]" (or absent). They are
// what String, MarshalJSON and therefore logs and the status API show.
type (
	configView struct {
		Source   string       `json:"source,omitempty"`
		Atlas    atlasView    `json:"atlas"`
		Server   serverView   `json:"server"`
		State    stateView    `json:"state"`
		Log      Log          `json:"log"`
		Defaults defaultsView `json:"defaults"`
		Policies []policyView `json:"policies"`
		Warnings []Issue      `json:"warnings,omitempty"`
	}
	atlasView struct {
		BaseURL           string   `json:"baseURL"`
		Auth              authView `json:"auth"`
		RequestsPerMinute int      `json:"requestsPerMinute"`
		Timeout           string   `json:"timeout"`
		DiscoveryInterval string   `json:"discoveryInterval"`
	}
	authView struct {
		ServiceAccount *serviceAccountView `json:"serviceAccount,omitempty"`
		APIKey         *apiKeyView         `json:"apiKey,omitempty"`
	}
	serviceAccountView struct {
		ClientID     string `json:"clientID"`
		ClientSecret Secret `json:"clientSecret"`
	}
	apiKeyView struct {
		PublicKey  string `json:"publicKey"`
		PrivateKey Secret `json:"privateKey"`
	}
	serverView struct {
		Listen         string  `json:"listen"`
		AdminTokenFile string  `json:"adminTokenFile,omitempty"`
		AdminToken     *Secret `json:"adminToken,omitempty"`
	}
	stateView struct {
		Path        string `json:"path"`
		HistoryRuns int    `json:"historyRuns"`
		HistoryAge  string `json:"historyAge"`
	}
	defaultsView struct {
		Timezone string       `json:"timezone"`
		Jitter   string       `json:"jitter"`
		Missed   string       `json:"missed"`
		Overlap  string       `json:"overlap"`
		Timeouts timeoutsView `json:"timeouts"`
	}
	timeoutsView struct {
		Wait     string `json:"wait"`
		Snapshot string `json:"snapshot"`
		Export   string `json:"export"`
		Restore  string `json:"restore"`
	}
	policyView struct {
		Name         string             `json:"name"`
		Action       run.Action         `json:"action"`
		Schedule     string             `json:"schedule"`
		Timezone     string             `json:"timezone"`
		Jitter       string             `json:"jitter"`
		Missed       string             `json:"missed"`
		Overlap      string             `json:"overlap"`
		Timeouts     timeoutsView       `json:"timeouts"`
		Targets      []targetView       `json:"targets,omitempty"`
		Snapshot     *SnapshotAction    `json:"snapshot,omitempty"`
		Export       *exportView        `json:"export,omitempty"`
		FlexRestore  *FlexRestoreAction `json:"flexRestore,omitempty"`
		RestoreDrill *drillView         `json:"restoreDrill,omitempty"`
	}
	drillView struct {
		RestoreDrillAction
		Verify *verifyView `json:"verify,omitempty"`
	}
	verifyView struct {
		Command []string `json:"command"`
		Timeout string   `json:"timeout"`
	}
	targetView struct {
		ProjectID string   `json:"projectID"`
		Clusters  []string `json:"clusters"`
		Exclude   []string `json:"exclude,omitempty"`
	}
	exportView struct {
		BucketID   string        `json:"bucketID"`
		Source     string        `json:"source,omitempty"`
		CustomData []atlas.Label `json:"customData,omitempty"`
	}
)

func timeoutsOf(t Timeouts) timeoutsView {
	return timeoutsView{Wait: FormatDuration(t.Wait), Snapshot: FormatDuration(t.Snapshot), Export: FormatDuration(t.Export), Restore: FormatDuration(t.Restore)}
}

func (c Config) view() configView {
	v := configView{
		Source: c.Source,
		Atlas: atlasView{
			BaseURL: c.Atlas.BaseURL, RequestsPerMinute: c.Atlas.RequestsPerMinute,
			Timeout: FormatDuration(c.Atlas.Timeout), DiscoveryInterval: FormatDuration(c.Atlas.DiscoveryInterval),
		},
		Server: serverView{Listen: c.Server.Listen, AdminTokenFile: c.Server.AdminTokenFile},
		State:  stateView{Path: c.State.Path, HistoryRuns: c.State.HistoryRuns, HistoryAge: FormatDuration(c.State.HistoryAge)},
		Log:    c.Log,
		Defaults: defaultsView{
			Timezone: c.Defaults.Timezone, Jitter: FormatDuration(c.Defaults.Jitter), Missed: c.Defaults.Missed,
			Overlap: c.Defaults.Overlap, Timeouts: timeoutsOf(c.Defaults.Timeouts),
		},
		Policies: make([]policyView, 0, len(c.Policies)),
		Warnings: c.Warnings,
	}
	if sa := c.Atlas.ServiceAccount; sa != nil {
		v.Atlas.Auth.ServiceAccount = &serviceAccountView{ClientID: sa.ClientID, ClientSecret: sa.ClientSecret}
	}
	if ak := c.Atlas.APIKey; ak != nil {
		v.Atlas.Auth.APIKey = &apiKeyView{PublicKey: ak.PublicKey, PrivateKey: ak.PrivateKey}
	}
	if !c.Server.AdminToken.IsZero() {
		tok := c.Server.AdminToken
		v.Server.AdminToken = &tok
	}
	for _, p := range c.Policies {
		pv := policyView{
			Name: p.Name, Action: p.Action(), Schedule: p.Schedule, Timezone: p.Timezone,
			Jitter: FormatDuration(p.Jitter), Missed: p.Missed, Overlap: p.Overlap, Timeouts: timeoutsOf(p.Timeouts),
			Snapshot: p.Snapshot, FlexRestore: p.FlexRestore,
		}
		for _, t := range p.Targets {
			pv.Targets = append(pv.Targets, targetView(t))
		}
		if r := p.RestoreDrill; r != nil {
			dv := &drillView{RestoreDrillAction: *r}
			dv.RestoreDrillAction.Verify = nil
			if v := r.Verify; v != nil {
				dv.Verify = &verifyView{Command: v.Command, Timeout: FormatDuration(v.Timeout)}
			}
			pv.RestoreDrill = dv
		}
		if e := p.Export; e != nil {
			pv.Export = &exportView{BucketID: e.BucketID, Source: e.Source, CustomData: e.CustomData}
		}
		v.Policies = append(v.Policies, pv)
	}
	return v
}

// MarshalJSON renders the redacted view: the YAML key names with defaults
// filled in, durations as text and every secret as "[redacted]".
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(c.view())
}

// String renders the redacted JSON view, so a Config can be logged or
// printed (fmt, zap, slog) without leaking credentials.
func (c Config) String() string {
	b, err := json.Marshal(c.view())
	if err != nil {
		return "policy.Config{unprintable}"
	}
	return string(b)
}

// Format prints the redacted view for every fmt verb. Without it, verbs
// such as %d print nested pointers raw, bypassing Secret's own redaction.
func (c Config) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue gives log/slog the redacted view.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// String shows the client id and a redacted secret.
func (s ServiceAccount) String() string {
	return "{ClientID:" + s.ClientID + " ClientSecret:" + redacted + "}"
}

// Format redacts for every fmt verb (see Config.Format).
func (s ServiceAccount) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// String shows the public key and a redacted private key.
func (k APIKey) String() string {
	return "{PublicKey:" + k.PublicKey + " PrivateKey:" + redacted + "}"
}

// Format redacts for every fmt verb (see Config.Format).
func (k APIKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

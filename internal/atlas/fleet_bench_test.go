package atlas_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/atlas/atlassim"
)

// benchFleet is a simulator with one replica set and one finished export,
// the object a run polls most at fleet size (GET export).
func benchFleet(b *testing.B) (sim *atlassim.Sim, exportID string) {
	b.Helper()
	sim = atlassim.New(atlassim.Options{Seed: 7})
	sim.AddServiceAccount(simID, simSecret)
	if err := sim.AddProject(simProject); err != nil {
		b.Fatal(err)
	}
	if err := sim.AddCluster(simProject, atlassim.ClusterSpec{Name: "prod", Tier: "M10", BackupEnabled: true}); err != nil {
		b.Fatal(err)
	}
	bucketID, err := sim.AddBucket(simProject, atlas.ExportBucket{BucketName: "backupd-exports", CloudProvider: "AWS", IAMRoleID: simRole})
	if err != nil {
		b.Fatal(err)
	}
	snapID, err := sim.SeedSnapshot(simProject, "prod", atlassim.SeedSnapshot{Type: atlas.SnapshotOnDemand, Status: atlas.SnapshotCompleted})
	if err != nil {
		b.Fatal(err)
	}
	c := benchClient(b, sim.Transport(), "https://cloud.mongodb.com")
	j, err := c.Exports.Create(context.Background(), simProject, "prod", atlas.ExportJobRequest{ExportBucketID: bucketID, SnapshotID: snapID,
		CustomData: []atlas.Label{{Key: "backupd.run", Value: "0123456789abcdef0123"}}})
	if err != nil {
		b.Fatal(err)
	}
	return sim, j.ID
}

func benchClient(b *testing.B, rt http.RoundTripper, base string) *atlas.Client {
	b.Helper()
	c, err := atlas.New(atlas.Config{
		BaseURL: base, ServiceAccount: &atlas.ServiceAccount{ClientID: simID, ClientSecret: simSecret},
		Transport: rt, RequestsPerMinute: 1 << 30,
	})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkGetExport is one poll of an export: request encoding, the
// client's auth, rate-limit and retry layers, the in-process simulator, and
// decoding the versioned JSON answer. It is the most frequent call of a
// snapshot+export chain.
func BenchmarkGetExport(b *testing.B) {
	sim, id := benchFleet(b)
	c := benchClient(b, sim.Transport(), "https://cloud.mongodb.com")
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Exports.Get(ctx, simProject, "prod", id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConcurrentPollsTCP is many runs polling at once over real TCP,
// as the daemon does at fleet size. dials/req counts new connections per
// request. "default" is the client's default transport (a clone of
// http.DefaultTransport, which keeps 2 idle connections per host), so over
// HTTP/1.1 (the simulator, or a proxy that only speaks it) concurrent polls
// beyond two open and close connections; "idle64" keeps 64 idle connections
// per host. Over HTTP/2, which Go negotiates with Atlas's TLS by default,
// requests share one connection and the difference does not arise.
func BenchmarkConcurrentPollsTCP(b *testing.B) {
	for _, mode := range []string{"default", "idle64"} {
		b.Run(mode, func(b *testing.B) {
			sim, id := benchFleet(b)
			var dials atomic.Int64
			srv := httptest.NewUnstartedServer(sim)
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					dials.Add(1)
				}
			}
			srv.Start()
			defer srv.Close()
			var rt http.RoundTripper // nil: the client's default
			if mode == "idle64" {
				t := http.DefaultTransport.(*http.Transport).Clone()
				t.MaxIdleConnsPerHost = 64
				rt = t
			}
			c := benchClient(b, rt, srv.URL)
			ctx := context.Background()
			b.SetParallelism(32)
			b.ResetTimer()
			dials.Store(0)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Exports.Get(ctx, simProject, "prod", id); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(dials.Load())/float64(b.N), "dials/req")
		})
	}
}

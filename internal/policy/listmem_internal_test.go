package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"

	"github.com/backupd/backupd/internal/atlas"
	"github.com/backupd/backupd/internal/clock"
)

// jsonLister answers each project's clusters by decoding an Atlas-shaped
// page, as the client does: every string its own allocation.
type jsonLister struct{ perProject int }

func (l jsonLister) List(_ context.Context, p string) ([]atlas.Cluster, error) {
	var page []byte
	page = append(page, '[')
	for i := range l.perProject {
		if i > 0 {
			page = append(page, ',')
		}
		name := fmt.Sprintf("cluster-%s-%02d", p[len(p)-4:], i)
		page = fmt.Appendf(page, `{"id":"6%023d","groupId":%q,"name":%q,"clusterType":"REPLICASET","backupEnabled":true,"paused":false,`+
			`"stateName":"IDLE","mongoDBVersion":"8.0.4","replicationSpecs":[{"id":"7%023d","zoneName":"Zone 1","regionConfigs":[`+
			`{"providerName":"AWS","regionName":"US_EAST_1","priority":7,"electableSpecs":{"instanceSize":"M10","nodeCount":3}}]}],`+
			`"connectionStrings":{"standard":"mongodb://%s-shard-00-00.abcde.mongodb.net:27017","standardSrv":"mongodb+srv://%s.abcde.mongodb.net"},`+
			`"links":[{"href":"https://cloud.mongodb.com/api/atlas/v2/groups/%s/clusters/%s","rel":"self"}]}`,
			i, p, name, i, name, name, p, name)
	}
	page = append(page, ']')
	var cs []atlas.Cluster
	err := json.Unmarshal(page, &cs)
	return cs, err
}

func (jsonLister) ListFlex(context.Context, string) ([]atlas.FlexCluster, error) { return nil, nil }

func heapAfterGC() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkListingBytesPerCluster is what a discovery holds of each listed
// cluster until the last policy is resolved (1,000 projects of 10, the
// fleet benchmark's shape), beside what Atlas's decoded description of the
// cluster would take: the listing kept the latter until 600e361.
func BenchmarkListingBytesPerCluster(b *testing.B) {
	const projects, perProject = 1000, 10
	l := jsonLister{perProject: perProject}
	ids := make([]string, projects)
	for i := range ids {
		ids[i] = fmt.Sprintf("32b6e34b3d91647abb20%04d", i)
	}
	var held, decoded float64
	for b.Loop() {
		base := heapAfterGC()
		pl := &projectLister{l: l, o: ResolveOptions{Clock: clock.Real(), ProjectTimeout: ProjectTimeout(Atlas{})}, listed: map[string]listing{}}
		for _, p := range ids {
			if _, err := pl.get(context.Background(), p); err != nil {
				b.Fatal(err)
			}
		}
		held = float64(heapAfterGC()-base) / (projects * perProject)
		runtime.KeepAlive(pl)

		base = heapAfterGC()
		all := make([][]atlas.Cluster, 0, projects)
		for _, p := range ids {
			cs, _ := l.List(context.Background(), p)
			all = append(all, cs)
		}
		decoded = float64(heapAfterGC()-base) / (projects * perProject)
		runtime.KeepAlive(all)
	}
	b.ReportMetric(held, "B/cluster-held")
	b.ReportMetric(decoded, "B/cluster-decoded")
}

package atlassim

import (
	"strings"
	"testing"
)

// FuzzFixture feeds arbitrary bytes to the fixture loader (the file
// `backupd atlas-sim -fixture` reads): it must never panic, and every
// refusal must name the file.
func FuzzFixture(f *testing.F) {
	const project = "projects:\n  - id: 32b6e34b3d91647abb20e7b8\n"
	for _, s := range []string{
		"",
		project + "    clusters:\n      - {name: a, type: SHARDED, tier: M30, shards: 2}\n      - {name: b, paused: true, backupEnabled: false}\n",
		project + "    flexClusters: [{name: f}]\n    seedFlexSnapshots:\n      - {flexCluster: f, id: 65f1b0000000000000000001, status: COMPLETED, age: 4h}\n",
		project + "    clusters: [{name: a}]\n    seedSnapshots:\n      - {cluster: a, id: 65f1a0000000000000000002, type: scheduled, status: completed, frequencyType: daily, age: 2h}\n",
		project + "    buckets:\n      - {id: 32b6e34b3d91647abb20e7b9, bucketName: x, cloudProvider: AWS, iamRoleId: 668c5f0ed436263134491592, region: us-east-1}\n",
		"serviceAccounts:\n  - {clientID: x, clientSecret: y}\napiKeys:\n  - {publicKey: p, privateKey: k}\n",
		"rateLimit: {capacity: -1}\ntimings: {exportQueued: -5s}\nfailures: {clusterRestores: 1, clusterRestoreEnd: lost}\n",
		"projects: []\n---\nprojects: []\n",
		"projects: &a [*a]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := parseFixture("fixture.yaml", data)
		if err != nil && !strings.Contains(err.Error(), "fixture.yaml") {
			t.Fatalf("refusal without the file: %v", err)
		}
	})
}

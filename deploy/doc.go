// Package deploy holds backupd's deployment artefacts (systemd unit,
// container image, Kubernetes sidecar example, Prometheus rules, Grafana
// dashboard) and no Go code. It exists so that its tests, which check the
// artefacts against the DESIGN.md contract, run with `go test ./...`.
package deploy

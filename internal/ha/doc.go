// Package ha elects one acting replica among several backupd sidecars with a
// Kubernetes Lease, so N replicas can run without two of them acting on the
// same slot. It builds on client-go's leaderelection (the implementation the
// Kubernetes control plane itself relies on) rather than a consensus of our
// own, and adds what Atlas needs on top: a fence that tells, before each
// POST, whether this replica still holds the lease and how long it may let
// the request run before another replica could take over.
//
// The daemon knows only internal/leader's interface; this package, and with
// it client-go, is linked only into binaries built with the `ha` tag
// (cmd/backupd/ha.go).
package ha

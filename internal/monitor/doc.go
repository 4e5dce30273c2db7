// Package monitor watches Atlas's own (native) backups read-only: for every
// selected cluster, the newest completed snapshot per kind, what the
// cluster's backup schedule promises, the project's Backup Compliance
// Policy, and when the monitor last read the cluster successfully. Atlas
// exports no backup metrics, so this is what lets a Prometheus answer "how
// old is the newest good backup of each cluster, and does it meet the
// policy?".
//
// The package is deliberately independent of the Atlas client: Reader and
// the Reading it returns are the monitor's own small view of what Atlas
// answers (ATLAS_API_NOTES.md sections 9, 9c, 9d), so the maths (Assess),
// the read plan (Config.NextRead) and the metrics (Collector) are tested
// without HTTP. The daemon adapts its Atlas client to Reader.
package monitor

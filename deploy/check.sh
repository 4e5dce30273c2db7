#!/usr/bin/env bash
# Checks the deployment artefacts under deploy/ (docs/deploy.md, "Checking the
# artefacts"). Run from anywhere inside the repository:
#
#   bash deploy/check.sh
#
# It installs what it needs when missing (Debian/Ubuntu: systemd for
# systemd-analyze, prometheus for promtool, jq), builds backupd, and then checks:
#   - the systemd unit with `systemd-analyze verify` (on a temporary copy whose
#     ExecStart points at the freshly built binary, because verify requires the
#     ExecStart path to exist) and its exposure score with
#     `systemd-analyze security --offline=true` (must be <= MAX_EXPOSURE, 2.0);
#   - the example configs with `backupd validate`;
#   - the Prometheus rules with `promtool check rules` and `promtool test rules`;
#   - the Grafana dashboard: valid JSON, and every panel query is valid PromQL
#     (promtool checks them as recording rules, with the dashboard variables
#     replaced by sample values); the monitor panels' queries give the
#     expected rows on a sample fleet (promtool test rules);
#   - the Dockerfile and Kubernetes manifests, statically, with
#     `go test ./deploy/` (no Docker engine or cluster is needed).
#
# Environment:
#   BACKUPD_BIN   use this backupd binary (built with -tags ha) instead of building ./cmd/backupd
#   MAX_EXPOSURE  highest accepted systemd exposure level (default 2.0)
#   NO_INSTALL=1  never run apt-get; fail if a tool is missing
#
# Exit status: 0 when every check passed, 1 otherwise. The last line reads
# "deploy-checks: N passed, M failed".
set -euo pipefail

MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
failures=()

# check NAME COMMAND...: runs COMMAND with its output in a log; reports ok or
# FAIL with the log.
check() {
	local name=$1
	shift
	local log="$tmp/log"
	if "$@" >"$log" 2>&1; then
		passed=$((passed + 1))
		printf 'ok    %s\n' "$name"
	else
		failed=$((failed + 1))
		failures+=("$name")
		printf 'FAIL  %s\n' "$name"
		sed 's/^/      /' "$log"
	fi
}

# ---- tools --------------------------------------------------------------------

missing_pkgs=()
need() { # need COMMAND DEBIAN-PACKAGE
	command -v "$1" >/dev/null 2>&1 || missing_pkgs+=("$2")
}
need systemd-analyze systemd
need promtool prometheus
need jq jq
if ! command -v go >/dev/null 2>&1; then
	echo "deploy/check.sh: the Go toolchain (go.mod's version) must be on PATH" >&2
	exit 1
fi
if ((${#missing_pkgs[@]} > 0)); then
	if [[ ${NO_INSTALL:-} == 1 ]]; then
		echo "deploy/check.sh: missing tools (packages: ${missing_pkgs[*]}) and NO_INSTALL=1" >&2
		exit 1
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "deploy/check.sh: missing tools (packages: ${missing_pkgs[*]}) and no apt-get to install them" >&2
		exit 1
	fi
	as_root=()
	if [[ $(id -u) != 0 ]]; then
		if ! command -v sudo >/dev/null 2>&1; then
			echo "deploy/check.sh: need root or sudo to install ${missing_pkgs[*]}" >&2
			exit 1
		fi
		as_root=(sudo)
	fi
	echo "installing: ${missing_pkgs[*]}"
	# The prometheus package only provides promtool here; on a host running
	# systemd it would also enable a Prometheus server, so prefer installing it
	# yourself there.
	"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$tmp/apt.log" 2>&1 || { cat "$tmp/apt.log" >&2; exit 1; }
	"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >>"$tmp/apt.log" 2>&1 || { cat "$tmp/apt.log" >&2; exit 1; }
fi
echo "tools: $(systemd-analyze --version | head -n1); $(promtool --version 2>&1 | head -n1); $(jq --version); $(go version)"

# ---- backupd binary -----------------------------------------------------------

bin=${BACKUPD_BIN:-}
if [[ -z $bin ]]; then
	bin="$tmp/backupd"
	# With the ha tag, as the sidecar image is built: its config has ha:.
	check "build ./cmd/backupd (-tags ha)" env CGO_ENABLED=0 go build -trimpath -tags ha -o "$bin" ./cmd/backupd
fi
have_bin=1
if [[ ! -x $bin ]]; then
	# Keep checking the rest; the unit only needs an executable ExecStart path.
	have_bin=0
	bin="$tmp/no-backupd"
	printf '#!/bin/sh\nexit 1\n' >"$bin"
	chmod +x "$bin"
fi

# ---- systemd ------------------------------------------------------------------

unit="$tmp/backupd.service"
sed "s#/usr/local/bin/backupd#$bin#g" deploy/systemd/backupd.service >"$unit"

# verify exits 0 on unknown keys and bad values and only prints them, so any
# output is a failure.
systemd_verify() {
	local out
	out=$(systemd-analyze verify --man=no "$unit" 2>&1) || { echo "$out"; return 1; }
	if [[ -n $out ]]; then
		echo "$out"
		return 1
	fi
	echo "no findings"
}
check "systemd-analyze verify deploy/systemd/backupd.service" systemd_verify

exposure=""
systemd_security() {
	local out
	out=$(systemd-analyze security --no-pager --offline=true "$unit" 2>&1) || { echo "$out"; return 1; }
	exposure=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for backupd\.service: \([0-9][0-9.]*\).*/\1/p')
	if [[ -z $exposure ]]; then
		echo "$out"
		echo "no 'Overall exposure level' line in the output"
		return 1
	fi
	echo "exposure $exposure (max $MAX_EXPOSURE)"
	awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e + 0 <= m + 0) }' || {
		printf '%s\n' "$out" | grep -E '^✗' || true
		return 1
	}
}
check "systemd-analyze security --offline=true: exposure <= $MAX_EXPOSURE" systemd_security
[[ -n $exposure ]] && echo "      measured exposure level: $exposure"

# ---- example configs ------------------------------------------------------------

creds="$tmp/credentials"
mkdir -m 0700 "$creds"
(
	umask 077
	printf 'example-client-secret\n' >"$creds/client-secret"
	printf 'example-admin-token\n' >"$creds/admin-token"
)

# The sidecar's config.yaml is the block scalar of the ConfigMap, indented 4.
awk '/^  config\.yaml: \|/ { on = 1; next }
     on && /^[^ ]/ { on = 0 }
     on { sub(/^    /, ""); print }' deploy/kubernetes/configmap.yaml >"$tmp/sidecar-config.yaml"

validate() { # validate CONFIG
	((have_bin)) || { echo "no backupd binary (see the build check)"; return 1; }
	[[ -s $1 ]] || { echo "$1 is empty"; return 1; }
	env -u MONGODB_ATLAS_CLIENT_ID -u MONGODB_ATLAS_CLIENT_SECRET \
		-u MONGODB_ATLAS_PUBLIC_API_KEY -u MONGODB_ATLAS_PRIVATE_API_KEY \
		CREDENTIALS_DIRECTORY="$creds" "$bin" validate -config "$1"
}
check "backupd validate deploy/systemd/config.yaml" validate deploy/systemd/config.yaml
check "backupd validate deploy/kubernetes/configmap.yaml (config.yaml)" validate "$tmp/sidecar-config.yaml"

# ---- Prometheus rules -----------------------------------------------------------

check "promtool check rules deploy/prometheus/backupd.rules.yaml" promtool check rules deploy/prometheus/backupd.rules.yaml
check "promtool test rules deploy/prometheus/backupd.rules.test.yaml" promtool test rules deploy/prometheus/backupd.rules.test.yaml

# ---- Grafana dashboard ------------------------------------------------------------

check "deploy/grafana/backupd.json is valid JSON" jq empty deploy/grafana/backupd.json

# Every panel query (and annotation query) as a recording rule, with the
# dashboard variables replaced, so promtool parses the PromQL. A rule file in
# JSON is valid YAML.
dashboard_promql() {
	jq '{groups: [{name: "dashboard", rules: [
	      ([.panels[] | select(.targets) | .targets[] | .expr] + [.annotations.list[]? | .expr // empty])
	      | to_entries[]
	      | {record: "dashboard:query:\(.key)",
	         expr: (.value
	                | gsub("\\$__rate_interval"; "5m") | gsub("\\$__interval"; "1m") | gsub("\\$__range"; "1d")
	                | gsub("\\$job"; "backupd") | gsub("\\$(instance|policy|stage|project|cluster)"; ".*"))}
	    ]}]}' deploy/grafana/backupd.json >"$tmp/dashboard.rules.json"
	if grep -q '\$' "$tmp/dashboard.rules.json"; then
		echo "unreplaced dashboard variable:"
		grep '\$' "$tmp/dashboard.rules.json"
		return 1
	fi
	promtool check rules "$tmp/dashboard.rules.json"
}
check "dashboard queries are valid PromQL (promtool)" dashboard_promql
# The monitor panels' queries evaluated on a small fleet (a stale and a
# never-read cluster); go test ./deploy/ checks these are the dashboard's
# current queries.
check "promtool test rules deploy/grafana/backupd.dashboard.test.yaml" promtool test rules deploy/grafana/backupd.dashboard.test.yaml

# ---- Dockerfile, Kubernetes, cross-file contract ------------------------------------------

check "go test ./deploy/ (Dockerfile, Kubernetes manifests, unit and rule contracts)" go test -count=1 ./deploy/

echo "Docker: not built here (no engine needed); the Dockerfile is checked statically by go test ./deploy/."
if ((failed > 0)); then
	printf 'failed checks:\n'
	printf '  %s\n' "${failures[@]}"
fi
echo "deploy-checks: $passed passed, $failed failed"
((failed == 0))

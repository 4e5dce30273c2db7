#!/usr/bin/env bash
# Builds kube-apiserver from this tools module (k8s.io/kubernetes at the
# version pinned in go.mod) for the HA tests, once: a binary already in the
# cache is reused. Prints the binary's path on stdout.
#
# About 10-30 minutes and 3 GB of memory on 2 cores; the cache directory is
# ${BACKUPD_TOOLS_CACHE:-$HOME/.cache/backupd}.
set -euo pipefail
cd "$(dirname "$0")"
version=v1.37.2 # keep equal to k8s.io/kubernetes in go.mod
grep -q "k8s.io/kubernetes $version\$" go.mod || { echo "build.sh: go.mod does not pin k8s.io/kubernetes $version" >&2; exit 1; }
cache="${BACKUPD_TOOLS_CACHE:-$HOME/.cache/backupd}"
bin="$cache/kube-apiserver-$version"
if [ ! -x "$bin" ]; then
	mkdir -p "$cache"
	tmp="$bin.tmp.$$"
	trap 'rm -f "$tmp"' EXIT
	echo "building kube-apiserver $version into $bin (this takes a while)" >&2
	go build -trimpath -o "$tmp" k8s.io/kubernetes/cmd/kube-apiserver
	mv -f "$tmp" "$bin" # atomic: a half-written binary is never at $bin
fi
echo "$bin"

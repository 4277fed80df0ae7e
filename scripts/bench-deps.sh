#!/usr/bin/env bash
# Installs what `npm run bench` needs beyond the tests' own (scripts/test-deps.sh), from Debian's
# archive:
#   golang-go                                 to build bench/containerd-client
#   golang-github-containerd-containerd-dev   containerd's Go sources: the client and content proxy it uses
# Without them the rows of many Read calls run with the bench's Node client only. Idempotent; uses
# sudo when not run as root (scripts/apt-install.sh).
set -euo pipefail
bash "$(dirname "$0")/test-deps.sh"
missing=()
command -v go >/dev/null || missing+=(golang-go)
[ -d /usr/share/gocode/src/github.com/containerd/containerd/content/proxy ] || missing+=(golang-github-containerd-containerd-dev)
bash "$(dirname "$0")/apt-install.sh" ${missing[@]+"${missing[@]}"}

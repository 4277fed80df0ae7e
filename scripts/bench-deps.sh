#!/usr/bin/env bash
# Installs what `npm run bench` needs beyond the tests' own (scripts/test-deps.sh), from Debian's
# archive:
#   golang-go                                 to build bench/containerd-client
#   golang-github-containerd-containerd-dev   containerd's Go sources: the client and content proxy it uses
# Without them the rows of many Read calls run with the bench's Node client only. Idempotent; uses
# sudo when not run as root.
set -euo pipefail
here=$(dirname "$0")
bash "$here/test-deps.sh"
missing=()
command -v go >/dev/null || missing+=(golang-go)
[ -d /usr/share/gocode/src/github.com/containerd/containerd/content/proxy ] || missing+=(golang-github-containerd-containerd-dev)
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"

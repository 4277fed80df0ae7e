#!/usr/bin/env bash
# Installs the Debian packages named, quietly (scripts/test-deps.sh and scripts/bench-deps.sh pass
# what they found missing); uses sudo when not run as root.
set -euo pipefail
[ $# -eq 0 ] && exit 0
sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
echo "installed: $*"

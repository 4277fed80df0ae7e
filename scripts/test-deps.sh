#!/usr/bin/env bash
# Installs what the test suite needs beyond npm packages, from Debian's archive:
#   containerd      for `ctr`, the real containerd client the interop tests drive
#   python3-swift   OpenStack Swift with its S3 API: the real S3 server of the tests
#   memcached       which Swift's proxy uses
#   openssl         to make the throw-away certificates of the TLS tests
#   bsdutils        for `script`, the pseudo-terminal the progress-bar tests run the CLI on
# Idempotent; installs through scripts/apt-install.sh (sudo when not run as root).
set -euo pipefail
missing=()
command -v ctr >/dev/null || missing+=(containerd)
command -v memcached >/dev/null || missing+=(memcached)
command -v openssl >/dev/null || missing+=(openssl)
command -v script >/dev/null || missing+=(bsdutils)
/usr/bin/python3 -c 'import swift' 2>/dev/null || missing+=(python3-swift)
bash "$(dirname "$0")/apt-install.sh" ${missing[@]+"${missing[@]}"}

#!/usr/bin/env bash
# A single-node OpenStack Swift with its S3 API (s3api) on loopback: the real S3 server the tests
# and the benchmark run against where no Docker engine is available.
#
#   scripts/swift-s3.sh install            apt-get install python3-swift memcached (needs root)
#   scripts/swift-s3.sh start DIR [PORT]   configure (once) and start; prints S3_TEST_* lines
#   scripts/swift-s3.sh stop DIR           stop what start DIR started
#
# The S3 endpoint is http://127.0.0.1:PORT (default: a free one), path-style, region us-east-1. Ports
# PORT+1..PORT+3 are Swift's account/container/object servers and PORT+4 memcached.
# Credentials: SWIFT_S3_ACCESS_KEY (default test:tester, i.e. account:user) / SWIFT_S3_SECRET_KEY
# (default testing).
# SWIFT_S3_DELAY_MS (default 0) at start: every S3 request waits this many milliseconds in the proxy
# before it is served (scripts/swift_s3_delay.py), as a remote S3's latency; concurrent requests wait
# side by side. It is read when the proxy starts: stop and start again to change it.
set -euo pipefail

# Debian's interpreter: the swift module is installed for it, not for a pyenv or venv python3.
PY=/usr/bin/python3
# where swift_s3_delay.py is, for the proxy to import
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

need_root() { if [ "$(id -u)" -ne 0 ]; then echo sudo; fi; }

install() {
  if [ -x "$PY" ] && "$PY" -c 'import swift' 2>/dev/null && command -v memcached >/dev/null; then return 0; fi
  local sudo; sudo=$(need_root)
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq --no-install-recommends python3-swift memcached >/dev/null 2>&1 ||
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends python3-swift memcached >/dev/null; }
}

configure() { # DIR PORT ACCESS SECRET
  local dir=$1 port=$2 access=$3 secret=$4
  local account=${access%%:*} user=${access#*:}
  mkdir -p "$dir/etc" "$dir/srv/d1" "$dir/run"
  cat >"$dir/etc/swift.conf" <<CONF
[swift-hash]
swift_hash_path_suffix = s3cs-test
swift_hash_path_prefix = s3cs-test

[storage-policy:0]
name = gold
default = yes

[swift-constraints]
# S3 allows single PUTs up to 5 GiB; Swift's default stops at 5 GB.
max_file_size = 5368709122
CONF
  local name offset
  for name in account container object; do
    case $name in account) offset=1 ;; container) offset=2 ;; object) offset=3 ;; esac
    {
      printf '[DEFAULT]\nbind_ip = 127.0.0.1\nbind_port = %s\nworkers = 0\n' $((port + offset))
      printf 'swift_dir = %s/etc\ndevices = %s/srv\nmount_check = false\n' "$dir" "$dir"
      printf 'disable_fallocate = true\nlog_level = WARNING\nlog_address = /nonexistent\n\n'
      printf '[pipeline:main]\npipeline = %s-server\n\n[app:%s-server]\nuse = egg:swift#%s\n' $name $name $name
      # Swift drops the page cache after reads by default; keep it so GETs of hot objects are fast.
      [ $name = object ] && printf 'keep_cache_size = 1099511627776\nkeep_cache_private = true\n'
      printf '\n[%s-replicator]\n[%s-auditor]\n' $name $name
    } >"$dir/etc/$name-server.conf"
  done
  cat >"$dir/etc/proxy-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $port
workers = 0
swift_dir = $dir/etc
log_level = WARNING
log_address = /nonexistent

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck s3delay proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
node_timeout = 60
client_timeout = 120

[filter:s3api]
use = egg:swift#s3api
location = us-east-1
s3_acl = false
check_bucket_owner = false
allow_multipart_uploads = true
min_segment_size = 5242880
max_upload_part_num = 10000
max_multi_delete_objects = 1000

[filter:tempauth]
use = egg:swift#tempauth
user_${account}_${user} = $secret .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$((port + 4))

[filter:healthcheck]
use = egg:swift#healthcheck
[filter:s3delay]
paste.filter_factory = swift_s3_delay:filter_factory
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:bulk]
use = egg:swift#bulk
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
max_manifest_segments = 10000
[filter:dlo]
use = egg:swift#dlo
CONF
  # One ring per server kind: 2^8 partitions, one replica, one device.
  "$PY" - "$dir/etc" "$port" <<'RINGS'
import os, sys
from swift.common.ring import RingBuilder
etc, port = sys.argv[1], int(sys.argv[2])
for kind, offset in (('account', 1), ('container', 2), ('object', 3)):
    builder = RingBuilder(8, 1, 1)
    builder.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': port + offset,
                     'device': 'd1', 'weight': 1, 'meta': ''})
    builder.rebalance()
    builder.save(os.path.join(etc, kind + '.builder'))
    builder.get_ring().save(os.path.join(etc, kind + '.ring.gz'))
RINGS
  echo "$port" >"$dir/etc/port"
}

spawn() { # DIR NAME CMD...
  local dir=$1 name=$2; shift 2
  local pidfile="$dir/run/$name.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return 0; fi
  nohup "$@" >"$dir/run/$name.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

healthy() { # PORT
  "$PY" - "$1" <<'PROBE' 2>/dev/null
import socket, sys, urllib.request
port = int(sys.argv[1])
for p in (port + 1, port + 2, port + 3, port + 4):
    socket.create_connection(('127.0.0.1', p), 0.5).close()
body = urllib.request.urlopen('http://127.0.0.1:%d/healthcheck' % port, timeout=2).read()
sys.exit(0 if body == b'OK' else 1)
PROBE
}

free_port_base() { # a base port with it and the next four free on loopback
  # Below the kernel's range of ephemeral ports: a Swift stopped and started again on the same
  # ports (the outage test does) must not find one taken by some client's outgoing connection.
  "$PY" - <<'FREE'
import random, socket
low = 32768
try:
    low = int(open('/proc/sys/net/ipv4/ip_local_port_range').read().split()[0])
except (OSError, ValueError, IndexError):
    pass
for _ in range(200):
    base = random.randint(min(10000, low - 1000), low - 6)
    try:
        for p in range(base, base + 5):
            s = socket.socket(); s.bind(('127.0.0.1', p)); s.close()
    except OSError:
        continue
    print(base); break
FREE
}

start() { # DIR [PORT]
  local dir=$1 port=${2:-}
  local access=${SWIFT_S3_ACCESS_KEY:-test:tester} secret=${SWIFT_S3_SECRET_KEY:-testing}
  install
  mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
  [ -n "$port" ] || [ -f "$dir/etc/port" ] || port=$(free_port_base)
  [ -f "$dir/etc/proxy-server.conf" ] || configure "$dir" "$port" "$access" "$secret"
  port=$(cat "$dir/etc/port")
  local delay=${SWIFT_S3_DELAY_MS:-0}
  if ! [[ $delay =~ ^[0-9]+([.][0-9]+)?$ ]]; then
    echo "swift-s3: SWIFT_S3_DELAY_MS must be a number of milliseconds, got '$delay'" >&2
    return 2
  fi
  if [ "$delay" != 0 ] && ! grep -q '^\[filter:s3delay\]' "$dir/etc/proxy-server.conf"; then
    echo "swift-s3: $dir was configured before SWIFT_S3_DELAY_MS existed; start a new directory for a delay" >&2
    return 2
  fi
  spawn "$dir" memcached memcached -l 127.0.0.1 -p $((port + 4)) -U 0 -m 64 -u "$(id -un)"
  local kind
  for kind in account container object proxy; do
    # swift.conf is read from /etc/swift unless the process is pointed at our directory first.
    spawn "$dir" $kind env SWIFT_S3_DELAY_MS="$delay" "$PY" -c '
import sys
from swift.common import utils, wsgi
sys.path.insert(0, sys.argv[4])
utils.set_swift_dir(sys.argv[1])
sys.exit(wsgi.run_wsgi(sys.argv[2], sys.argv[3], verbose=False))' "$dir/etc" "$dir/etc/$kind-server.conf" "$kind-server" "$HERE"
  done
  local i
  for i in $(seq 1 150); do
    if healthy "$port"; then
      echo "S3_TEST_ENDPOINT=http://127.0.0.1:$port"
      echo "S3_TEST_ACCESS_KEY=$access"
      echo "S3_TEST_SECRET_KEY=$secret"
      echo "S3_TEST_REGION=us-east-1"
      return 0
    fi
    sleep 0.2
  done
  echo "swift-s3: not healthy after 30 s; logs in $dir/run:" >&2
  tail -n 20 "$dir"/run/*.log >&2
  return 1
}

stop() { # DIR
  local dir=$1 f pid
  # the proxy first, so clients see the store go away as a whole, not answer with missing parts
  for f in "$dir"/run/proxy.pid "$dir"/run/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
  done
}

case ${1:-} in
  install) install ;;
  start) start "${2:?usage: swift-s3.sh start DIR [PORT]}" "${3:-}" ;;
  stop) stop "${2:?usage: swift-s3.sh stop DIR}" ;;
  *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac

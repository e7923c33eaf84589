#!/usr/bin/env bash
# Regenerates tests/fixtures/etcd-3.4.23.{wal,snap} with a real etcd 3.4.23:
# one member on loopback, --snapshot-count 5, a few puts, a lease, a delete, a
# txn, a compaction, an auth user and role; then stops it and keeps the used
# part of the (64 MB, zero-preallocated) first WAL file and the last .snap.
# Needs: apt-get install etcd-client (etcdctl); etcd itself is unpacked from the
# etcd-server .deb (apt-get download) so no service gets installed or started.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$W"' EXIT
(cd "$W" && apt-get download -qq etcd-server 2>/dev/null && dpkg -x etcd-server_*.deb x)
"$W/x/usr/bin/etcd" --name default --data-dir "$W/data" --snapshot-count 5 \
  --listen-client-urls http://127.0.0.1:23791 --advertise-client-urls http://127.0.0.1:23791 \
  --listen-peer-urls http://127.0.0.1:23801 --initial-advertise-peer-urls http://127.0.0.1:23801 \
  --initial-cluster default=http://127.0.0.1:23801 > "$W/etcd.log" 2>&1 &
pid=$!
export ETCDCTL_API=3
e() { timeout 10 etcdctl --endpoints 127.0.0.1:23791 "$@"; }
for _ in $(seq 50); do e endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
for i in 1 2 3 4 5 6 7 8; do e put "key$i" "value $i" >/dev/null; done
lease=$(e lease grant 60 | awk '{print $2}')
e put leased v --lease="$lease" >/dev/null
e del key1 >/dev/null
e put --prev-kv key2 again >/dev/null
printf 'value("key3") = "value 3"\n\nput key3 txn\n\n\n' | e txn >/dev/null
e compact 5 >/dev/null
e user add root:pw >/dev/null; e role add r1 >/dev/null; e user grant-role root r1 >/dev/null
kill "$pid"; wait "$pid" || true
mkdir -p "$here/tests/fixtures"
python3 - "$W/data/member/wal/0000000000000000-0000000000000000.wal" "$here/tests/fixtures/etcd-3.4.23.wal" <<'PY'
import sys
d = open(sys.argv[1], 'rb').read()
n = (len(d.rstrip(b'\0')) + 7) // 8 * 8   # frames are 8-byte aligned
open(sys.argv[2], 'wb').write(d[:n])
PY
cp "$(ls "$W"/data/member/snap/*.snap | sort | tail -1)" "$here/tests/fixtures/etcd-3.4.23.snap"
ls -l "$here/tests/fixtures"

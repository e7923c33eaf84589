#!/usr/bin/env bash
# Proves proto/ describes the same wire protocol as etcd 3.4.23: compiles
# etcd's own .proto files (from Debian's golang-etcd-server-dev, gogoproto and
# google.api annotations stripped) and ours with protoc, and diffs the
# descriptors (packages, messages, fields, numbers, types, json names, enums,
# services, methods, streaming). The only expected difference: the proto2
# fields gogo marks non-nullable are `required` here (see walpb/record.proto).
# Needs: apt-get install golang-etcd-server-dev protobuf-compiler python3
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
S=/usr/share/gocode/src/go.etcd.io/etcd
R=$(mktemp -d)
trap 'rm -rf "$R"' EXIT
mkdir -p "$R"/etcd/{mvccpb,authpb,etcdserverpb,v3electionpb,v3lockpb,walpb,leasepb,snappb}
cp $S/mvcc/mvccpb/kv.proto "$R"/etcd/mvccpb/
cp $S/auth/authpb/auth.proto "$R"/etcd/authpb/
cp $S/etcdserver/etcdserverpb/{rpc,raft_internal,etcdserver}.proto "$R"/etcd/etcdserverpb/
cp $S/etcdserver/api/v3election/v3electionpb/v3election.proto "$R"/etcd/v3electionpb/
cp $S/etcdserver/api/v3lock/v3lockpb/v3lock.proto "$R"/etcd/v3lockpb/
cp $S/wal/walpb/record.proto "$R"/etcd/walpb/
cp $S/lease/leasepb/lease.proto "$R"/etcd/leasepb/
cp $S/etcdserver/api/snap/snappb/snap.proto "$R"/etcd/snappb/
python3 - "$R" <<'PY'
import glob, re, sys
for f in glob.glob(sys.argv[1] + '/etcd/**/*.proto', recursive=True):
    s = open(f).read()
    s = s.replace('import "gogoproto/gogo.proto";', '').replace('import "google/api/annotations.proto";', '')
    s = re.sub(r'option \(gogoproto[^;]*;', '', s)
    s = re.sub(r'\s*\[\(gogoproto[^\]]*\]', '', s)
    out, i = '', 0
    while (j := s.find('option (google.api.http)', i)) >= 0:  # drop nested { ... };
        out += s[i:j]; m, d = s.find('{', j), 0
        while True:
            d += {'{': 1, '}': -1}.get(s[m], 0)
            if d == 0: break
            m += 1
        i = s.find(';', m) + 1
    s = out + s[i:]
    for a, b in [('etcd/mvcc/mvccpb/', 'etcd/mvccpb/'), ('etcd/auth/authpb/', 'etcd/authpb/'),
                 ('etcd/etcdserver/etcdserverpb/', 'etcd/etcdserverpb/'),
                 ('import "etcdserver.proto"', 'import "etcd/etcdserverpb/etcdserver.proto"'),
                 ('import "rpc.proto"', 'import "etcd/etcdserverpb/rpc.proto"')]:
        s = s.replace(a, b)
    open(f, 'w').write(s)
PY
files=$(cd "$R" && find etcd -name '*.proto' | sort)
protoc -I "$R" --descriptor_set_out="$R/ref.pb" $files
(cd "$here/proto" && protoc -I . --descriptor_set_out="$R/ours.pb" $files)
for x in ref ours; do
  protoc --decode=google.protobuf.FileDescriptorSet -I /usr/include google/protobuf/descriptor.proto \
    < "$R/$x.pb" > "$R/$x.txt"
  python3 "$here/proto/tools/flatten_descriptors.py" "$R/$x.txt" > "$R/$x.flat"
done
echo "fields, enum values and methods compared: $(wc -l < "$R/ref.flat")"
if ! diff "$R/ref.flat" <(sed 's/LABEL_REQUIRED$/LABEL_OPTIONAL/' "$R/ours.flat"); then
  echo "DIFFERENT from etcd 3.4.23 (< etcd, > ours)"; exit 1
fi
grep 'LABEL_REQUIRED$' "$R/ours.flat" | sed 's/^/required here (optional, non-nullable in etcd): /'
echo "same wire protocol as etcd 3.4.23"

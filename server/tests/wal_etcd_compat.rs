//! Glass's WAL reads a WAL written by a real etcd 3.4.23 (`tests/fixtures/etcd-3.4.23.wal`,
//! made by `server/proto/tools/make_etcd_fixtures.sh`), and every entry in it decodes as
//! etcd's `raftpb.Entry` carrying an `InternalRaftRequest` (or a v2 request / conf change).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use glassd::pb::etcdserverpb::{InternalRaftRequest, Metadata};
use glassd::storage::wal::{Wal, WalSnapshot};
use prost::Message;

#[test]
fn reads_a_wal_written_by_etcd_3_4() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("member/wal");
    std::fs::create_dir_all(&wal_dir).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/etcd-3.4.23.wal"
        ),
        wal_dir.join("0000000000000000-0000000000000000.wal"),
    )
    .unwrap();
    let mut wal = Wal::open(&wal_dir, WalSnapshot { index: 0, term: 0 }).unwrap();
    let rec = wal.read_all().unwrap();
    let meta = Metadata::decode(rec.metadata.as_slice()).unwrap();
    assert_ne!(meta.node_id, 0, "etcd's metadata names the member");
    assert_ne!(meta.cluster_id, 0);
    assert!(rec.hard_state.is_some());
    assert!(rec.entries.len() >= 15, "{} entries", rec.entries.len());
    let mut requests = 0;
    for (i, e) in rec.entries.iter().enumerate() {
        assert_eq!(e.index, i as u64 + 1, "entries are contiguous from 1");
        // raftpb.Entry: 1 type, 2 term, 3 index, 4 data.
        let (ty, data) = decode_entry(&e.data);
        if ty == 0 && !data.is_empty() {
            if let Ok(r) = InternalRaftRequest::decode(data.as_slice()) {
                if r.header.is_some() {
                    requests += 1;
                }
            }
        }
    }
    assert!(requests >= 10, "{requests} InternalRaftRequests");
}

/// Type and data of a `raftpb.Entry` (a minimal protobuf reader for two fields).
fn decode_entry(mut b: &[u8]) -> (u64, Vec<u8>) {
    fn varint(b: &mut &[u8]) -> u64 {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let x = b[0];
            *b = &b[1..];
            v |= u64::from(x & 0x7f) << shift;
            if x & 0x80 == 0 {
                break;
            }
        }
        v
    }
    let (mut ty, mut data) = (0, Vec::new());
    while !b.is_empty() {
        let key = varint(&mut b);
        match (key >> 3, key & 7) {
            (1, 0) => ty = varint(&mut b),
            (_, 0) => {
                varint(&mut b);
            }
            (f, 2) => {
                let n = varint(&mut b) as usize;
                if f == 4 {
                    data = b[..n].to_vec();
                }
                b = &b[n..];
            }
            other => panic!("unexpected wire type {other:?}"),
        }
    }
    (ty, data)
}

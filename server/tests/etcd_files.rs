//! Files written by a real etcd 3.4.23 (a single member, --snapshot-count 5,
//! a few puts, a lease, a delete, a compaction, an auth user and role) decode
//! with the generated types and re-encode to the very same bytes.
//!
//! WAL frame (etcd wal/encoder.go), repeated until a zero length field:
//!   u64 little-endian: low 56 bits = record length N; if bit 63 is set, bits
//!   56..58 = number of zero pad bytes P that follow the record (8-byte alignment)
//!   N bytes: walpb.Record;  P zero bytes
//! Record.crc is the running CRC-32C over the data of all records so far; a
//! crc record (type 4) carries the previous file's running CRC and restarts it.

use glassd::pb::etcdserverpb::{InternalRaftRequest, Metadata, Request};
use glassd::pb::{snappb, walpb};
use prost::Message;

/// raftpb.Entry (proto2, non-nullable fields), enough to reach the payload.
#[derive(Clone, PartialEq, prost::Message)]
struct Entry {
    #[prost(uint64, required, tag = "2")]
    term: u64,
    #[prost(uint64, required, tag = "3")]
    index: u64,
    #[prost(int32, required, tag = "1")]
    r#type: i32,
    #[prost(bytes = "vec", optional, tag = "4")]
    data: Option<Vec<u8>>,
}

#[test]
fn wal_records_round_trip_byte_for_byte() {
    let file = std::fs::read("tests/fixtures/etcd-3.4.23.wal").expect("fixture");
    let mut off = 0;
    let mut crc = 0u32;
    let mut counts = [0usize; 6];
    let (mut v3, mut v2) = (0, 0);
    while off + 8 <= file.len() {
        let len_field = u64::from_le_bytes(file[off..off + 8].try_into().expect("8 bytes"));
        if len_field == 0 {
            break;
        }
        let n = (len_field & 0x00ff_ffff_ffff_ffff) as usize;
        let pad = if len_field >> 63 == 1 {
            ((len_field >> 56) & 0x7) as usize
        } else {
            0
        };
        assert_eq!((n + pad) % 8, 0, "frames are 8-byte aligned");
        let raw = &file[off + 8..off + 8 + n];
        assert!(file[off + 8 + n..off + 8 + n + pad].iter().all(|&b| b == 0));
        off += 8 + n + pad;

        let rec = walpb::Record::decode(raw).expect("record");
        assert_eq!(rec.encode_to_vec(), raw, "record re-encodes identically");
        counts[rec.r#type as usize] += 1;
        let data = rec.data.as_deref().unwrap_or_default();
        if rec.r#type == 4 {
            crc = rec.crc;
        } else {
            crc = crc32c::crc32c_append(crc, data);
            assert_eq!(rec.crc, crc, "running CRC-32C");
        }
        match rec.r#type {
            1 => {
                let m = Metadata::decode(data).expect("metadata");
                assert_ne!(m.node_id, 0);
                assert_eq!(m.encode_to_vec(), data);
            }
            2 => {
                let e = Entry::decode(data).expect("entry");
                assert_eq!(e.encode_to_vec(), data);
                let payload = e.data.unwrap_or_default();
                if e.r#type != 0 || payload.is_empty() {
                    continue; // conf change, or the empty entry of a new leader
                }
                // etcd's own fallback: InternalRaftRequest, else a bare v2 Request.
                match InternalRaftRequest::decode(&payload[..]) {
                    Ok(r) if r.encode_to_vec() == payload => v3 += 1,
                    _ => {
                        let r = Request::decode(&payload[..]).expect("v2 request");
                        assert_eq!(r.encode_to_vec(), payload, "{r:?}");
                        v2 += 1;
                    }
                }
            }
            5 => {
                let s = walpb::Snapshot::decode(data).expect("snapshot");
                assert_eq!(s.encode_to_vec(), data);
            }
            _ => {}
        }
    }
    // One metadata record, entries, hard states, the initial crc record, snapshots.
    assert_eq!((counts[1], counts[4]), (1, 1));
    assert!(
        counts[2] > 10 && counts[3] > 0 && counts[5] > 1,
        "{counts:?}"
    );
    assert!(v3 >= 10 && v2 >= 1, "v3 {v3} v2 {v2}");
    println!("records by type {counts:?}; v3 requests {v3}, v2 requests {v2}");
}

#[test]
fn snap_file_round_trips_byte_for_byte() {
    let file = std::fs::read("tests/fixtures/etcd-3.4.23.snap").expect("fixture");
    let s = snappb::Snapshot::decode(&file[..]).expect("snap");
    assert_eq!(s.encode_to_vec(), file);
    assert_eq!(s.crc, crc32c::crc32c(s.data.as_deref().unwrap_or_default()));
}

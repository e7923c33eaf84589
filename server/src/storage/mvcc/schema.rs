//! What the MVCC store keeps in the backend: etcd's two buckets, byte for byte.
//!
//! ```text
//! bucket "key" — every revision the store still holds, in revision order
//!   key    17 bytes  main (u64 BE) '_' sub (u64 BE)             a put     (see `revision`)
//!          18 bytes  the same and 't' (0x74)                      a delete (tombstone)
//!   value  mvccpb.KeyValue, protobuf (fields 1..6 in order, zero values left out):
//!            put:       key, create_revision, mod_revision, version, value, lease
//!            tombstone: key only
//!
//! bucket "meta"
//!   key                    value
//!   "consistent_index"     8 bytes  u64 BE  index of the last raft entry whose changes are in
//!                                           this file (written in the same batch tx)
//!   "term"                 8 bytes  u64 BE  that entry's term (etcd 3.5 on; 3.4 ignores it)
//!   "scheduledCompactRev"  17 bytes revision {main: R, sub: 0}: compaction at R begun
//!   "finishedCompactRev"   17 bytes revision {main: R, sub: 0}: compaction at R done
//! ```
//!
//! A compaction writes `scheduledCompactRev` (and commits) before deleting anything and
//! `finishedCompactRev` in the same batch tx as its last deletes: a file where the first is
//! larger was closed in the middle of one, which the store finishes when it opens.
//!
//! The consistent index is never written as 0 (etcd: 0 means "not loaded yet"), nor the term.

use prost::Message;

use super::{MvccError, Revision};
use crate::pb::mvccpb::KeyValue;

/// The bucket of revisions.
pub const KEY_BUCKET: &[u8] = b"key";
/// The bucket of the store's own state.
pub const META_BUCKET: &[u8] = b"meta";

pub const CONSISTENT_INDEX_KEY: &[u8] = b"consistent_index";
pub const TERM_KEY: &[u8] = b"term";
pub const SCHEDULED_COMPACT_KEY: &[u8] = b"scheduledCompactRev";
pub const FINISHED_COMPACT_KEY: &[u8] = b"finishedCompactRev";

/// etcd's default hash ignores: the consistent index and term differ between members that
/// hold the same data (they are where each is in its log, not what it holds). For
/// `Backend::hash`.
pub fn hash_ignores(bucket: &[u8], key: &[u8]) -> bool {
    bucket == META_BUCKET && (key == CONSISTENT_INDEX_KEY || key == TERM_KEY)
}

/// A `key` bucket value.
pub fn encode_kv(kv: &KeyValue) -> Vec<u8> {
    kv.encode_to_vec()
}

/// Reads a `key` bucket value stored under `revision`.
pub fn decode_kv(revision: Revision, value: &[u8]) -> Result<KeyValue, MvccError> {
    KeyValue::decode(value).map_err(|e| MvccError::MalformedValue {
        revision,
        reason: e.to_string(),
    })
}

/// A `meta` value for the consistent index or the term.
pub fn encode_u64(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

pub fn decode_u64(key: &'static str, value: &[u8]) -> Result<u64, MvccError> {
    let b: [u8; 8] = value.try_into().map_err(|_| MvccError::MalformedMeta {
        key,
        len: value.len(),
        want: 8,
    })?;
    Ok(u64::from_be_bytes(b))
}

/// A `meta` value for a compaction revision: `{main: rev, sub: 0}` in the revision format.
pub fn encode_compact_rev(rev: i64) -> [u8; super::REV_BYTES_LEN] {
    Revision::new(rev, 0).to_bytes()
}

pub fn decode_compact_rev(key: &'static str, value: &[u8]) -> Result<i64, MvccError> {
    if value.len() != super::REV_BYTES_LEN {
        return Err(MvccError::MalformedMeta {
            key,
            len: value.len(),
            want: super::REV_BYTES_LEN,
        });
    }
    Ok(Revision::from_bytes(value)?.main)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes etcd (gogo-protobuf) writes for these two values.
    #[test]
    fn values_are_etcds_bytes() {
        let kv = KeyValue {
            key: b"foo".to_vec(),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            value: b"bar".to_vec(),
            lease: 0x1234,
        };
        assert_eq!(
            encode_kv(&kv),
            [
                0x0a, 3, b'f', b'o', b'o', // 1: key
                0x10, 2, // 2: create_revision
                0x18, 3, // 3: mod_revision
                0x20, 2, // 4: version
                0x2a, 3, b'b', b'a', b'r', // 5: value
                0x30, 0xb4, 0x24, // 6: lease (varint 0x1234)
            ]
        );
        let tomb = KeyValue {
            key: b"foo".to_vec(),
            ..KeyValue::default()
        };
        assert_eq!(encode_kv(&tomb), [0x0a, 3, b'f', b'o', b'o']);
        assert_eq!(
            decode_kv(Revision::new(3, 0), &encode_kv(&kv)),
            Ok(kv.clone())
        );
        assert!(matches!(
            decode_kv(Revision::new(3, 0), &[0x0a, 9, b'f']),
            Err(MvccError::MalformedValue { .. })
        ));
    }

    #[test]
    fn meta_values() {
        assert_eq!(encode_u64(0x0102), [0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(decode_u64("term", &encode_u64(77)), Ok(77));
        assert_eq!(
            decode_u64("term", &[1, 2]),
            Err(MvccError::MalformedMeta {
                key: "term",
                len: 2,
                want: 8
            })
        );
        let b = encode_compact_rev(5);
        assert_eq!(b, [0, 0, 0, 0, 0, 0, 0, 5, b'_', 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(decode_compact_rev("finishedCompactRev", &b), Ok(5));
        assert!(decode_compact_rev("finishedCompactRev", &b[..8]).is_err());
        assert!(hash_ignores(META_BUCKET, CONSISTENT_INDEX_KEY));
        assert!(hash_ignores(META_BUCKET, TERM_KEY));
        assert!(!hash_ignores(META_BUCKET, FINISHED_COMPACT_KEY));
        assert!(!hash_ignores(KEY_BUCKET, TERM_KEY));
    }
}

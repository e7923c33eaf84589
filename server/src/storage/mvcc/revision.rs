//! Revisions, and the bytes they are stored under in the backend's `key` bucket.
//!
//! Every key-value pair etcd stores lives in the `key` bucket under its revision, not under its
//! user key (the user key is inside the value, an `mvccpb.KeyValue`). The bucket key:
//!
//! ```text
//! offset  size  field
//! 0       8     main  — i64 as u64, big-endian (so byte order is revision order)
//! 8       1     '_'   (0x5f)
//! 9       8     sub   — i64 as u64, big-endian
//! 17      1     't'   (0x74) — only on a tombstone (a delete); absent otherwise
//! ```
//!
//! 17 bytes for a put, 18 for a tombstone. Because both numbers are big-endian and never
//! negative, the bucket's byte order is revision order, with a tombstone sorting right after
//! the plain key of the same revision (it never has one: a revision is either).

use std::fmt;

use super::MvccError;

/// Length of a plain revision key: `main`, `_`, `sub`.
pub const REV_BYTES_LEN: usize = 8 + 1 + 8;
/// Length of a marked revision key: a plain one and the mark byte.
pub const MARKED_REV_BYTES_LEN: usize = REV_BYTES_LEN + 1;
/// The mark byte of a tombstone.
pub const MARK_TOMBSTONE: u8 = b't';
const SEPARATOR: u8 = b'_';

/// A point in the history of the key space.
///
/// Every change committed atomically (one txn, one put, one delete) shares a `main` revision;
/// each key it touches gets its own, increasing `sub`. Ordered by `main`, then `sub`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    /// The revision of the change set; what clients see as `mod_revision`.
    pub main: i64,
    /// The change's position inside its change set.
    pub sub: i64,
}

impl Revision {
    pub const fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    /// The 17-byte bucket key (see the table at the top of this file).
    pub fn to_bytes(self) -> [u8; REV_BYTES_LEN] {
        let mut b = [0u8; REV_BYTES_LEN];
        b[..8].copy_from_slice(&self.main.to_be_bytes());
        b[8] = SEPARATOR;
        b[9..].copy_from_slice(&self.sub.to_be_bytes());
        b
    }

    /// Reads a bucket key, plain or marked (the mark is ignored here; see [`BucketKey`]).
    pub fn from_bytes(b: &[u8]) -> Result<Revision, MvccError> {
        BucketKey::from_bytes(b).map(|k| k.revision)
    }
}

/// `main.sub`, as etcd's key index comments write revisions (`3.0`, `14.1`).
impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.main, self.sub)
    }
}

/// A `key` bucket key: a revision, and whether the value under it is a tombstone.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BucketKey {
    pub revision: Revision,
    pub tombstone: bool,
}

impl BucketKey {
    pub const fn new(revision: Revision, tombstone: bool) -> Self {
        BucketKey {
            revision,
            tombstone,
        }
    }

    /// The bucket key: 17 bytes, or 18 with the tombstone mark.
    pub fn to_bytes(self) -> Vec<u8> {
        let plain = self.revision.to_bytes();
        if self.tombstone {
            mark_tombstone(&plain).to_vec()
        } else {
            plain.to_vec()
        }
    }

    /// Reads a bucket key, refusing anything that is not exactly etcd's format.
    pub fn from_bytes(b: &[u8]) -> Result<BucketKey, MvccError> {
        let malformed = || MvccError::MalformedRevision(b.to_vec());
        let tombstone = match (b.len(), b.get(REV_BYTES_LEN)) {
            (REV_BYTES_LEN, _) => false,
            (MARKED_REV_BYTES_LEN, Some(&MARK_TOMBSTONE)) => true,
            _ => return Err(malformed()),
        };
        if b[8] != SEPARATOR {
            return Err(malformed());
        }
        let word = |at: usize| -> Result<i64, MvccError> {
            let bytes: [u8; 8] = b[at..at + 8].try_into().map_err(|_| malformed())?;
            Ok(i64::from_be_bytes(bytes))
        };
        Ok(BucketKey {
            revision: Revision::new(word(0)?, word(9)?),
            tombstone,
        })
    }
}

/// A plain revision key with the tombstone mark appended.
pub fn mark_tombstone(plain: &[u8; REV_BYTES_LEN]) -> [u8; MARKED_REV_BYTES_LEN] {
    let mut b = [0u8; MARKED_REV_BYTES_LEN];
    b[..REV_BYTES_LEN].copy_from_slice(plain);
    b[REV_BYTES_LEN] = MARK_TOMBSTONE;
    b
}

/// Whether a bucket key is a tombstone's (18 bytes ending in the mark), as etcd checks it.
pub fn is_tombstone(b: &[u8]) -> bool {
    b.len() == MARKED_REV_BYTES_LEN && b[REV_BYTES_LEN] == MARK_TOMBSTONE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_follow_the_table() {
        let rev = Revision::new(0x0102_0304_0506_0708, 0x1112_1314_1516_1718);
        let b = rev.to_bytes();
        assert_eq!(
            b,
            [
                0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, b'_', 0x11, 0x12, 0x13, 0x14, 0x15,
                0x16, 0x17, 0x18
            ]
        );
        assert_eq!(Revision::from_bytes(&b), Ok(rev));
        assert!(!is_tombstone(&b));

        let t = mark_tombstone(&b);
        assert_eq!(t[..17], b);
        assert_eq!(t[17], b't');
        assert!(is_tombstone(&t));
        assert_eq!(Revision::from_bytes(&t), Ok(rev));
        assert_eq!(BucketKey::from_bytes(&t), Ok(BucketKey::new(rev, true)));
        assert_eq!(BucketKey::new(rev, true).to_bytes(), t.to_vec());
        assert_eq!(BucketKey::new(rev, false).to_bytes(), b.to_vec());
    }

    /// etcd's revision_test.go: byte order is revision order.
    #[test]
    fn byte_order_is_revision_order() {
        let revs = [
            Revision::new(0, 0),
            Revision::new(1, 0),
            Revision::new(1, 1),
            Revision::new(2, 0),
            Revision::new(255, 0),
            Revision::new(256, 0),
            Revision::new(i64::MAX, 0),
            Revision::new(i64::MAX, i64::MAX),
        ];
        for pair in revs.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].to_bytes() < pair[1].to_bytes(), "{pair:?}");
            // A tombstone sorts after the plain key of the same revision, before the next one.
            let marked = mark_tombstone(&pair[0].to_bytes());
            assert!(pair[0].to_bytes().as_slice() < marked.as_slice());
            assert!(marked.as_slice() < pair[1].to_bytes().as_slice());
        }
    }

    #[test]
    fn malformed_keys_are_refused() {
        let good = Revision::new(5, 1).to_bytes();
        let mut no_sep = good;
        no_sep[8] = b'-';
        let mut bad_mark = mark_tombstone(&good);
        bad_mark[17] = b'x';
        for (name, b) in [
            ("empty", Vec::new()),
            ("short", good[..16].to_vec()),
            ("long", [good.as_slice(), b"tt"].concat()),
            ("separator", no_sep.to_vec()),
            ("mark", bad_mark.to_vec()),
        ] {
            assert_eq!(
                BucketKey::from_bytes(&b),
                Err(MvccError::MalformedRevision(b.clone())),
                "{name}"
            );
            assert!(Revision::from_bytes(&b).is_err(), "{name}");
        }
    }

    #[test]
    fn displays_like_etcd_comments() {
        assert_eq!(Revision::new(14, 1).to_string(), "14.1");
    }
}

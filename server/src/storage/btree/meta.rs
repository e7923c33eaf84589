//! The meta page: where a reader finds everything else.
//!
//! Pages 0 and 1 are meta pages; a commit of tx `txid` writes page `txid % 2`, so the other one
//! always holds the previous committed state. On open the valid meta with the larger txid wins;
//! a damaged meta falls back to the other one.
//!
//! | offset | size | field     | meaning                                                      |
//! |-------:|-----:|-----------|--------------------------------------------------------------|
//! |      0 |   16 | header    | page header: id 0 or 1, flags 0x04 (meta)                    |
//! |     16 |    4 | magic     | 0xED0CDAED                                                   |
//! |     20 |    4 | version   | 2                                                            |
//! |     24 |    4 | page_size | bytes per page (the OS page size when the file was made)     |
//! |     28 |    4 | flags     | unused, 0                                                    |
//! |     32 |    8 | root      | root bucket: its root page id                                |
//! |     40 |    8 | sequence  | root bucket: its sequence                                    |
//! |     48 |    8 | freelist  | freelist page id; 0xFFFF_FFFF_FFFF_FFFF = not persisted      |
//! |     56 |    8 | pgid      | high-water mark: first page id past the end of the data      |
//! |     64 |    8 | txid      | id of the transaction that wrote this meta                   |
//! |     72 |    8 | checksum  | FNV-1a 64 of bytes 16..72 (0 = not checked, as in bbolt)     |
//!
//! All integers little-endian.

use super::error::{Error, Result};
use super::page::{
    put_u32, put_u64, u16_at, u32_at, u64_at, write_header, BucketHeader, META_PAGE,
    PAGE_HEADER_SIZE,
};
use super::{Pgid, Txid};

pub const MAGIC: u32 = 0xED0C_DAED;
pub const VERSION: u32 = 2;
/// `freelist` value meaning the freelist is not stored (rebuilt by a scan on open).
pub const PGID_NO_FREELIST: Pgid = u64::MAX;
/// Bytes of the meta struct covered by the checksum.
const SUM_LEN: usize = 56;
/// Smallest and largest page sizes Glass accepts.
pub const MIN_PAGE_SIZE: u32 = 1024;
pub const MAX_PAGE_SIZE: u32 = 65536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub page_size: u32,
    pub flags: u32,
    pub root: BucketHeader,
    pub freelist: Pgid,
    pub pgid: Pgid,
    pub txid: Txid,
}

/// 64-bit FNV-1a, the hash bbolt checksums its meta with.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Meta {
    /// Decodes and validates the meta on a page. `at` is the page id read (0 or 1).
    pub fn decode(page: &[u8], at: Pgid) -> Result<Meta> {
        let m = PAGE_HEADER_SIZE;
        if page.len() < m + 64 {
            return Err(Error::InvalidMeta {
                page: at,
                reason: "meta page is truncated".into(),
            });
        }
        let magic = u32_at(page, m);
        if magic != MAGIC {
            return Err(Error::InvalidMeta {
                page: at,
                reason: format!("bad magic {magic:#010x} (not a bbolt file?)"),
            });
        }
        let version = u32_at(page, m + 4);
        if version != VERSION {
            return Err(Error::InvalidMeta {
                page: at,
                reason: format!("file format version {version}, expected {VERSION}"),
            });
        }
        let stored = u64_at(page, m + SUM_LEN);
        let sum = fnv1a64(&page[m..m + SUM_LEN]);
        if stored != 0 && stored != sum {
            return Err(Error::InvalidMeta {
                page: at,
                reason: format!("checksum mismatch (stored {stored:#018x}, computed {sum:#018x})"),
            });
        }
        let flags_in_header = u16_at(page, 8);
        if flags_in_header != META_PAGE {
            return Err(Error::InvalidMeta {
                page: at,
                reason: format!("page flags {flags_in_header:#x}, expected meta"),
            });
        }
        let meta = Meta {
            page_size: u32_at(page, m + 8),
            flags: u32_at(page, m + 12),
            root: BucketHeader {
                root: u64_at(page, m + 16),
                sequence: u64_at(page, m + 24),
            },
            freelist: u64_at(page, m + 32),
            pgid: u64_at(page, m + 40),
            txid: u64_at(page, m + 48),
        };
        if !meta.page_size.is_power_of_two()
            || !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&meta.page_size)
        {
            return Err(Error::InvalidMeta {
                page: at,
                reason: format!("invalid page size {}", meta.page_size),
            });
        }
        Ok(meta)
    }

    /// Encodes this meta as a whole page (`page_size` bytes) for page id `txid % 2`.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = vec![0u8; self.page_size as usize];
        let id = self.txid % 2;
        write_header(&mut buf, id, META_PAGE, 0, 0);
        let m = PAGE_HEADER_SIZE;
        put_u32(&mut buf, m, MAGIC);
        put_u32(&mut buf, m + 4, VERSION);
        put_u32(&mut buf, m + 8, self.page_size);
        put_u32(&mut buf, m + 12, self.flags);
        put_u64(&mut buf, m + 16, self.root.root);
        put_u64(&mut buf, m + 24, self.root.sequence);
        put_u64(&mut buf, m + 32, self.freelist);
        put_u64(&mut buf, m + 40, self.pgid);
        put_u64(&mut buf, m + 48, self.txid);
        let sum = fnv1a64(&buf[m..m + SUM_LEN]);
        put_u64(&mut buf, m + SUM_LEN, sum);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn round_trip_and_damage() {
        let m = Meta {
            page_size: 4096,
            flags: 0,
            root: BucketHeader {
                root: 3,
                sequence: 9,
            },
            freelist: 2,
            pgid: 4,
            txid: 7,
        };
        let mut page = m.encode();
        assert_eq!(u64_at(&page, 0), 1);
        assert_eq!(Meta::decode(&page, 1).unwrap(), m);
        page[60] ^= 1;
        let err = Meta::decode(&page, 1).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
        page[16] = 0;
        assert!(Meta::decode(&page, 1)
            .unwrap_err()
            .to_string()
            .contains("magic"));
    }
}

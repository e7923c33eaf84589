//! etcd's WAL record format (etcd 3.4 `wal/encoder.go`, `wal/decoder.go`, `wal/walpb`),
//! byte for byte, and the few protobuf fields the WAL must read itself.
//!
//! A segment is a sequence of frames, each starting on the byte after the previous one (8-byte
//! aligned in practice, since every frame is padded to a multiple of 8):
//!
//! | offset | size | field     | meaning                                                           |
//! |-------:|-----:|-----------|-------------------------------------------------------------------|
//! |      0 |    8 | len_field | little-endian u64: bits 0..56 = record length `n` in bytes; when  |
//! |        |      |           | the record is padded, the top byte is `0x80 \| pad` (pad 1..7)     |
//! |      8 |    n | record    | a `walpb.Record` protobuf (below)                                 |
//! |  8 + n |  pad | padding   | zero bytes up to the next multiple of 8 (`pad = (8 - n % 8) % 8`)  |
//!
//! A `len_field` of 0 is not a frame: it is preallocated (zeroed) space, the end of the segment.
//! Old etcd (< 3.0) wrote frames without the pad flag; they are read as unpadded frames.
//!
//! **`walpb.Record`** (proto2, gogoproto: `type` and `crc` are non-nullable, so always written,
//! even when zero; `data` is written only when present — etcd's crc records have none):
//!
//! | bytes                   | field        | meaning                                         |
//! |-------------------------|--------------|-------------------------------------------------|
//! | `08` varint             | 1 `type`     | int64 record type, below                        |
//! | `10` varint             | 2 `crc`      | uint32 running CRC-32C after this record's data |
//! | `1a` varint(len) bytes  | 3 `data`     | the payload (absent in crc records)             |
//!
//! | type | name     | data                                                                   |
//! |-----:|----------|------------------------------------------------------------------------|
//! |    1 | metadata | opaque bytes from the caller (etcd: `etcdserverpb.Metadata`)            |
//! |    2 | entry    | a `raftpb.Entry` (1 `Type`, 2 `Term`, 3 `Index`, 4 `Data`)              |
//! |    3 | state    | a `raftpb.HardState` (1 `term`, 2 `vote`, 3 `commit`)                   |
//! |    4 | crc      | none; `crc` carries the previous segment's last running CRC            |
//! |    5 | snapshot | a `walpb.Snapshot` (1 `index`, 2 `term`; 3.5 adds 3 `conf_state`)       |
//!
//! The **CRC** is CRC-32C (Castagnoli), chained: a record's `crc` is the CRC of all record data
//! since the segment chain began, i.e. `crc32c_append(previous crc, data)` (Go's
//! `crc32.Update(prev, castagnoliTable, data)`). Crc records do not advance it; they reset the
//! reader's running value. The CRC covers `data` only — not `type`, not the frame.
//!
//! Example: a crc record carrying 0 is `04 00 00 00 00 00 00 84 | 08 04 10 00 | 00 00 00 00`.

pub use crate::pb::wire::{put_uvarint, ProtoError, ProtoReader, Wire};

/// Bytes of a frame's length field.
pub const FRAME_HEADER: usize = 8;
/// etcd's `minSectorSize`: the unit in which a torn write leaves zeros.
pub const SECTOR: u64 = 512;

/// The record types etcd defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    Metadata = 1,
    Entry = 2,
    State = 3,
    Crc = 4,
    Snapshot = 5,
}

impl RecordType {
    pub fn from_i64(v: i64) -> Option<RecordType> {
        Some(match v {
            1 => RecordType::Metadata,
            2 => RecordType::Entry,
            3 => RecordType::State,
            4 => RecordType::Crc,
            5 => RecordType::Snapshot,
            _ => return None,
        })
    }
}

/// A decoded `walpb.Record`, borrowing its data from the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub kind: i64,
    pub crc: u32,
    pub data: Option<&'a [u8]>,
}

impl<'a> Record<'a> {
    pub fn data(&self) -> &'a [u8] {
        self.data.unwrap_or(&[])
    }
}

/// etcd's `encodeFrameSize`: the length field and the padding for a record of `n` bytes.
pub fn encode_frame_size(n: usize) -> (u64, usize) {
    let pad = (8 - n % 8) % 8;
    let mut len_field = n as u64;
    if pad != 0 {
        len_field |= (0x80 | pad as u64) << 56;
    }
    (len_field, pad)
}

/// etcd's `decodeFrameSize`: (record bytes, padding bytes) from a length field.
pub fn decode_frame_size(len_field: u64) -> (u64, u64) {
    let rec = len_field & !(0xffu64 << 56);
    // Padding is flagged by the top bit (a negative int64 in Go); its count is the low 3 bits
    // of the top byte.
    let pad = if len_field >> 63 == 1 {
        (len_field >> 56) & 0x7
    } else {
        0
    };
    (rec, pad)
}

/// Appends a `walpb.Record` as gogo's `Marshal` writes it: `type` and `crc` always, `data`
/// when present.
fn encode_record(out: &mut Vec<u8>, kind: i64, crc: u32, data: Option<&[u8]>) {
    out.push(0x08);
    put_uvarint(out, kind as u64);
    out.push(0x10);
    put_uvarint(out, u64::from(crc));
    if let Some(d) = data {
        out.push(0x1a);
        put_uvarint(out, d.len() as u64);
        out.extend_from_slice(d);
    }
}

/// Appends one whole frame (length field, `walpb.Record`, padding) to `out`, exactly as etcd's
/// encoder writes it.
pub fn encode_frame(out: &mut Vec<u8>, kind: RecordType, crc: u32, data: Option<&[u8]>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    encode_record(out, kind as i64, crc, data);
    let n = out.len() - start - FRAME_HEADER;
    let (len_field, pad) = encode_frame_size(n);
    out[start..start + FRAME_HEADER].copy_from_slice(&len_field.to_le_bytes());
    out.resize(out.len() + pad, 0);
}

fn expect_varint(w: Wire<'_>) -> Result<u64, ProtoError> {
    match w {
        Wire::Varint(v) => Ok(v),
        _ => Err(ProtoError("wrong wire type for a varint field")),
    }
}

/// Parses a `walpb.Record` as gogo's `Unmarshal` does: any field order, the last occurrence
/// wins, unknown fields skipped.
pub fn parse_record(buf: &[u8]) -> Result<Record<'_>, ProtoError> {
    let mut r = ProtoReader::new(buf);
    let mut rec = Record {
        kind: 0,
        crc: 0,
        data: None,
    };
    while let Some((field, wire)) = r.next_field()? {
        match field {
            1 => rec.kind = expect_varint(wire)? as i64,
            // gogo decodes into a uint32, dropping higher bits.
            2 => rec.crc = expect_varint(wire)? as u32,
            3 => match wire {
                Wire::Bytes(b) => rec.data = Some(b),
                _ => return Err(ProtoError("wrong wire type for data")),
            },
            _ => {}
        }
    }
    Ok(rec)
}

/// Parses a `walpb.Record` that must be exactly as etcd writes it: the three fields in order,
/// shortest varints, a crc that fits 32 bits, nothing else. Since neither the type nor the
/// encoding is covered by the CRC, this is what makes a flipped bit there an error rather than
/// a record that reads the same (gogo would take an unknown field or an over-long varint).
pub fn parse_record_exact(buf: &[u8]) -> Result<Record<'_>, ProtoError> {
    let rec = parse_record(buf)?;
    let mut again = Vec::with_capacity(buf.len());
    encode_record(&mut again, rec.kind, rec.crc, rec.data);
    if again != buf {
        return Err(ProtoError(
            "not laid out as etcd writes records (field order, unknown field or long varint)",
        ));
    }
    Ok(rec)
}

/// Parses a record the way etcd lays one out (`type`, `crc`, then `data` unless it is a crc
/// record) from the start of `buf`, ignoring whatever follows it; returns it and its length.
/// Used to tell a damaged frame header from a torn record.
pub fn parse_record_prefix(buf: &[u8]) -> Option<(Record<'_>, usize)> {
    let mut r = ProtoReader::new(buf);
    let kind = match r.next_field().ok()?? {
        (1, Wire::Varint(v)) => v as i64,
        _ => return None,
    };
    let crc = match r.next_field().ok()?? {
        (2, Wire::Varint(v)) => v as u32,
        _ => return None,
    };
    if kind == RecordType::Crc as i64 {
        return Some((
            Record {
                kind,
                crc,
                data: None,
            },
            r.position(),
        ));
    }
    match r.next_field().ok()?? {
        (3, Wire::Bytes(d)) => Some((
            Record {
                kind,
                crc,
                data: Some(d),
            },
            r.position(),
        )),
        _ => None,
    }
}

/// `walpb.Snapshot`: the raft index and term of a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct WalSnapshot {
    pub index: u64,
    pub term: u64,
}

impl WalSnapshot {
    /// gogo's encoding: both fields always written.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(22);
        out.push(0x08);
        put_uvarint(&mut out, self.index);
        out.push(0x10);
        put_uvarint(&mut out, self.term);
        out
    }

    /// Reads index and term, skipping 3.5's `conf_state` and anything else.
    pub fn parse(buf: &[u8]) -> Result<WalSnapshot, ProtoError> {
        let mut r = ProtoReader::new(buf);
        let mut s = WalSnapshot::default();
        while let Some((field, wire)) = r.next_field()? {
            match field {
                1 => s.index = expect_varint(wire)?,
                2 => s.term = expect_varint(wire)?,
                _ => {}
            }
        }
        Ok(s)
    }
}

/// The two fields of a `raftpb.Entry` the WAL needs: where it goes in the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntryPosition {
    pub index: u64,
    pub term: u64,
}

/// Reads `Term` (2) and `Index` (3) from an encoded `raftpb.Entry`, checking the rest is
/// well-formed (`Type` (1) a varint, `Data` (4) bytes).
pub fn parse_entry(buf: &[u8]) -> Result<EntryPosition, ProtoError> {
    let mut r = ProtoReader::new(buf);
    let mut e = EntryPosition::default();
    while let Some((field, wire)) = r.next_field()? {
        match (field, wire) {
            (1, w) => {
                expect_varint(w)?;
            }
            (2, w) => e.term = expect_varint(w)?,
            (3, w) => e.index = expect_varint(w)?,
            (4, Wire::Bytes(_)) => {}
            (4, _) => return Err(ProtoError("wrong wire type for entry data")),
            _ => {}
        }
    }
    Ok(e)
}

/// A decoded `raftpb.HardState`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
}

impl HardState {
    pub fn parse(buf: &[u8]) -> Result<HardState, ProtoError> {
        let mut r = ProtoReader::new(buf);
        let mut h = HardState::default();
        while let Some((field, wire)) = r.next_field()? {
            match field {
                1 => h.term = expect_varint(wire)?,
                2 => h.vote = expect_varint(wire)?,
                3 => h.commit = expect_varint(wire)?,
                _ => {}
            }
        }
        Ok(h)
    }

    /// raft's `IsEmptyHardState`.
    pub fn is_empty(&self) -> bool {
        *self == HardState::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        for (v, want) in [
            (0u64, vec![0x00]),
            (1, vec![0x01]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (300, vec![0xac, 0x02]),
            (
                u64::MAX,
                vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let mut out = Vec::new();
            put_uvarint(&mut out, v);
            assert_eq!(out, want, "{v}");
            let mut r = ProtoReader::new(&out);
            assert_eq!(r.varint(), Ok(v));
        }
    }

    #[test]
    fn frame_sizes_round_trip() {
        for n in 0..64usize {
            let (lf, pad) = encode_frame_size(n);
            assert_eq!((n + pad) % 8, 0);
            assert_eq!(decode_frame_size(lf), (n as u64, pad as u64));
        }
        // etcd's own example: 4 bytes of record, 4 of padding.
        assert_eq!(encode_frame_size(4), (0x8400_0000_0000_0004, 4));
    }

    /// etcd's `TestReadRecord` vector (server/storage/wal/record_test.go): a metadata ("info")
    /// record over `08 ef fd 02` whose crc encodes as `99 b5 e4 d0 03`. It was written without
    /// padding (length field 14): such frames must still decode.
    #[test]
    fn etcd_record_vector() {
        let data = [0x08, 0xef, 0xfd, 0x02];
        let crc = crc32c::crc32c_append(0, &data);
        let mut frame = Vec::new();
        encode_frame(&mut frame, RecordType::Metadata, crc, Some(&data));
        let body = [
            0x08, 0x01, 0x10, 0x99, 0xb5, 0xe4, 0xd0, 0x03, 0x1a, 0x04, 0x08, 0xef, 0xfd, 0x02,
        ];
        assert_eq!(&frame[8..22], &body);
        assert_eq!(&frame[..8], &0x8200_0000_0000_000eu64.to_le_bytes());
        assert_eq!(&frame[22..], &[0, 0]);
        let rec = parse_record(&body).unwrap();
        assert_eq!((rec.kind, rec.crc, rec.data), (1, crc, Some(&data[..])));
    }

    #[test]
    fn crc_record_has_no_data_field() {
        let mut f = Vec::new();
        encode_frame(&mut f, RecordType::Crc, 0, None);
        assert_eq!(
            f,
            [0x04, 0, 0, 0, 0, 0, 0, 0x84, 0x08, 0x04, 0x10, 0x00, 0, 0, 0, 0]
        );
        // An empty but present payload is written (gogo writes non-nil empty bytes).
        let mut g = Vec::new();
        encode_frame(&mut g, RecordType::Metadata, 0, Some(&[]));
        assert_eq!(&g[8..14], &[0x08, 0x01, 0x10, 0x00, 0x1a, 0x00]);
    }

    #[test]
    fn raftpb_fields() {
        // Entry{Type: Normal, Term: 5, Index: 300, Data: "x"} as gogo writes it.
        let e = [0x08, 0x00, 0x10, 0x05, 0x18, 0xac, 0x02, 0x22, 0x01, b'x'];
        assert_eq!(
            parse_entry(&e),
            Ok(EntryPosition {
                index: 300,
                term: 5
            })
        );
        assert!(parse_entry(&e[..e.len() - 1]).is_err());
        let h = HardState::parse(&[0x08, 0x02, 0x10, 0x03, 0x18, 0x04]).unwrap();
        assert_eq!((h.term, h.vote, h.commit), (2, 3, 4));
        assert!(HardState::parse(&[0x08, 0, 0x10, 0, 0x18, 0])
            .unwrap()
            .is_empty());
        let s = WalSnapshot { index: 7, term: 2 };
        assert_eq!(s.encode(), [0x08, 0x07, 0x10, 0x02]);
        assert_eq!(WalSnapshot::default().encode(), [0x08, 0x00, 0x10, 0x00]);
        // 3.5 appends conf_state (field 3): skipped.
        assert_eq!(
            WalSnapshot::parse(&[0x08, 0x07, 0x10, 0x02, 0x1a, 0x02, 0x08, 0x01]),
            Ok(s)
        );
    }

    #[test]
    fn exact_parse_rejects_what_etcd_never_writes() {
        let mut f = Vec::new();
        encode_frame(&mut f, RecordType::Entry, 0xdead_beef, Some(b"abc"));
        let body = &f[8..8 + 13];
        assert!(parse_record_exact(body).is_ok());
        // The crc varint's last byte with bits above 32 set: gogo truncates it to the same crc.
        let mut long = body.to_vec();
        long[7] |= 0x10;
        assert_eq!(parse_record(&long).unwrap().crc, 0xdead_beef);
        assert!(parse_record_exact(&long).is_err());
        // The crc tag moved to an unknown field number: gogo skips it (crc 0).
        let mut unknown = body.to_vec();
        unknown[2] = 0x30;
        assert!(parse_record(&unknown).is_ok());
        assert!(parse_record_exact(&unknown).is_err());
    }

    #[test]
    fn record_prefix_ignores_trailing_bytes() {
        let mut f = Vec::new();
        encode_frame(&mut f, RecordType::Entry, 9, Some(b"abc"));
        f.extend_from_slice(&[0xde, 0xad]);
        let (rec, n) = parse_record_prefix(&f[8..]).unwrap();
        assert_eq!((rec.kind, rec.crc, rec.data), (2, 9, Some(&b"abc"[..])));
        assert_eq!(n, 2 + 2 + 2 + 3);
    }
}

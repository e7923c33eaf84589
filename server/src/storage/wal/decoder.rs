//! Reading one segment's frames, checking the CRC chain, and telling a torn tail from damage.
//!
//! etcd's rules (`wal/decoder.go`, `wal/repair.go`), kept here:
//! - a zero length field is preallocated space: the segment's records end there;
//! - in the last segment, a frame cut short by the end of the file, or one whose record fails
//!   to decode or to match its CRC while one of its 512-byte sectors is all zeros, is a *torn
//!   write*: the crash hit before the write was synced, and the log is cut back to the frame
//!   before it (`Repair`);
//! - anything else that fails — and anything at all in a segment that is not the last — is
//!   damage, reported with the file and the frame's byte offset.
//!
//! Glass is stricter where etcd's format leaves bits unchecked (the CRC covers record data
//! only): a record must be laid out exactly as etcd writes it, a length field must be one etcd
//! writes, padding must be zero; in each segment the first record must be the crc record and
//! the second the metadata (checked in `log`).
//!
//! Glass also widens "torn" by one case etcd misses, a write torn inside a sector: a failing
//! frame in the last segment after which nothing was written.
//!
//! Before it cuts a tail, Glass looks for **evidence that whole records follow** the failing
//! frame — the failing record itself intact behind a damaged length field, or, further on, a
//! record whose CRC continues the chain, or two that chain to each other. A torn write is the
//! last thing in the log, so such evidence means a flipped bit in the middle of the log, which
//! etcd would (in those cases) cut away silently together with every synced record after it.
//! Glass reports it instead. The price: after a power cut that persisted the sectors of one
//! unsynced batch out of order, Glass refuses to open where etcd would cut; the error names
//! the spot.

use std::path::Path;

use super::error::WalError;
use super::record::{
    decode_frame_size, parse_record_exact, parse_record_prefix, Record, RecordType, FRAME_HEADER,
    SECTOR,
};

/// One step of decoding a segment.
#[derive(Debug)]
pub enum Step<'a> {
    /// A whole record whose frame starts at `off`.
    Record { off: u64, rec: Record<'a> },
    /// The records end at `off`; every byte after it is zero.
    End { off: u64 },
    /// The tail from `off` on is a torn write, to be cut away.
    Torn { off: u64, reason: String },
}

/// Decodes the frames of one segment.
pub struct SegmentDecoder<'a> {
    bytes: &'a [u8],
    path: &'a Path,
    /// Whether this is the log's last segment, the only one that can hold a torn write.
    last: bool,
    off: usize,
    /// The running CRC: of all record data so far, reset by crc records.
    crc: u32,
    done: bool,
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// etcd's `isTornEntry`: whether any sector-aligned piece of `data` (which starts at byte
/// `file_off` of the segment) is all zeros — a sector the crash kept from reaching the disk.
fn has_zero_sector(data: &[u8], file_off: u64) -> bool {
    let mut off = file_off;
    let mut rest = data;
    while !rest.is_empty() {
        let n = ((SECTOR - off % SECTOR) as usize).min(rest.len());
        if all_zero(&rest[..n]) {
            return true;
        }
        off += n as u64;
        rest = &rest[n..];
    }
    false
}

/// Whether a length field is one etcd writes: a top byte of 0 (no padding; pre-3.0 frames
/// were never padded), or `0x80 | pad` with the record and padding ending 8-byte aligned.
fn canonical(len_field: u64) -> bool {
    let (n, pad) = decode_frame_size(len_field);
    match len_field >> 56 {
        0 => true,
        0x81..=0x87 => (n + pad) % 8 == 0,
        _ => false,
    }
}

/// A frame at `p` that decodes into a record of a known type with zero padding: the record and
/// where the next frame would start.
fn whole_frame(b: &[u8], p: usize) -> Option<(Record<'_>, usize)> {
    let len_field = u64_at(b, p)?;
    if len_field == 0 || !canonical(len_field) {
        return None;
    }
    let (n, pad) = decode_frame_size(len_field);
    let start = p + FRAME_HEADER;
    let body_end = start.checked_add(usize::try_from(n).ok()?)?;
    let end = body_end.checked_add(pad as usize)?;
    if n < 4 || end > b.len() || !all_zero(&b[body_end..end]) {
        return None;
    }
    let rec = parse_record_exact(&b[start..body_end]).ok()?;
    RecordType::from_i64(rec.kind)?;
    Some((rec, end))
}

impl<'a> SegmentDecoder<'a> {
    pub fn new(bytes: &'a [u8], path: &'a Path, last: bool, crc: u32) -> Self {
        SegmentDecoder {
            bytes,
            path,
            last,
            off: 0,
            crc,
            done: false,
        }
    }

    /// The running CRC after the records decoded so far.
    pub fn crc(&self) -> u32 {
        self.crc
    }

    /// The next record, or where the records end.
    pub fn next_step(&mut self) -> Result<Step<'a>, WalError> {
        let step = self.step();
        if !matches!(step, Ok(Step::Record { .. })) {
            self.done = true;
        }
        step
    }

    fn step(&mut self) -> Result<Step<'a>, WalError> {
        let (b, off) = (self.bytes, self.off);
        let at = off as u64;
        if self.done || off == b.len() {
            return Ok(Step::End { off: at });
        }
        let Some(len_field) = u64_at(b, off) else {
            return self.failed(off, "the frame header is cut short by the end of the file");
        };
        if len_field == 0 {
            if all_zero(&b[off..]) {
                return Ok(Step::End { off: at });
            }
            return self.failed(off, "a zero length field is followed by data");
        }
        if !canonical(len_field) {
            return self.failed(off, &format!("malformed length field {len_field:#018x}"));
        }
        let (n, pad) = decode_frame_size(len_field);
        let start = off + FRAME_HEADER;
        let avail = (b.len() - start) as u64;
        if n.checked_add(pad).is_none_or(|end| end > avail) {
            return self.failed(
                off,
                &format!("a frame of {n} bytes runs past the end of the file ({avail} left)"),
            );
        }
        // Both fit in the file, which is in memory.
        let (n, pad) = (n as usize, pad as usize);
        let frame = &b[start..start + n + pad];
        // Only asked once something failed: a write that stopped in this frame, because a
        // sector of it never reached the disk (etcd's rule) or nothing after it did.
        let torn_shaped = || {
            has_zero_sector(frame, start as u64) || (self.last && all_zero(&b[start + n + pad..]))
        };
        let rec = match parse_record_exact(&frame[..n]) {
            Ok(rec) => rec,
            Err(e) if torn_shaped() => return self.failed(off, &format!("bad record: {e}")),
            Err(e) => {
                return Err(WalError::corrupt(
                    self.path,
                    at,
                    format!("not a walpb.Record: {e}"),
                ))
            }
        };
        if !all_zero(&frame[n..]) {
            if torn_shaped() {
                return self.failed(off, "non-zero padding");
            }
            return Err(WalError::corrupt(self.path, at, "non-zero padding"));
        }
        if rec.kind == RecordType::Crc as i64 {
            // A crc record carries the previous segment's last CRC; a fresh decoder (0) takes
            // it on trust, as etcd's ReadAll does.
            if self.crc != 0 && rec.crc != self.crc {
                return Err(WalError::CrcMismatch {
                    path: self.path.to_path_buf(),
                    offset: at,
                    stored: rec.crc,
                    computed: self.crc,
                });
            }
            self.crc = rec.crc;
        } else {
            let computed = crc32c::crc32c_append(self.crc, rec.data());
            if computed != rec.crc {
                if torn_shaped() {
                    return self.failed(off, "crc mismatch in a partly zeroed record");
                }
                return Err(WalError::CrcMismatch {
                    path: self.path.to_path_buf(),
                    offset: at,
                    stored: rec.crc,
                    computed,
                });
            }
            self.crc = computed;
        }
        self.off = start + n + pad;
        Ok(Step::Record { off: at, rec })
    }

    /// A frame at `off` that looks like a torn write: the tail, if this is the last segment and
    /// nothing whole follows; damage otherwise.
    fn failed(&self, off: usize, reason: &str) -> Result<Step<'a>, WalError> {
        if !self.last {
            return Err(WalError::corrupt(
                self.path,
                off as u64,
                format!("{reason} (not the last segment)"),
            ));
        }
        if let Some(evidence) = self.whole_records_after(off) {
            return Err(WalError::corrupt(
                self.path,
                off as u64,
                format!("{reason}, but it is not a torn tail: {evidence}"),
            ));
        }
        Ok(Step::Torn {
            off: off as u64,
            reason: reason.to_string(),
        })
    }

    /// Evidence that whole records follow the frame failing at `off`, if there is any.
    fn whole_records_after(&self, off: usize) -> Option<String> {
        let b = self.bytes;
        let start = off + FRAME_HEADER;
        // The failing record itself, parsed as etcd lays records out, whatever its length
        // field says.
        let mut chain_from = Vec::with_capacity(2);
        // What the length field claims (none when it is not one etcd writes).
        let claimed = u64_at(b, off)
            .filter(|&l| canonical(l))
            .map(|l| decode_frame_size(l).0);
        if let Some((rec, len)) = b.get(start..).and_then(parse_record_prefix) {
            let whole = if rec.kind == RecordType::Crc as i64 {
                rec.crc == self.crc
            } else {
                crc32c::crc32c_append(self.crc, rec.data()) == rec.crc
            };
            // A whole record its length field agrees with is a write that lost only its
            // padding: a tear like any other.
            let damaged_length = claimed != Some(len as u64);
            if whole && damaged_length && RecordType::from_i64(rec.kind).is_some() {
                return Some(format!(
                    "the record at byte {off} is whole (its CRC matches); its length field is damaged"
                ));
            }
            chain_from.push(rec.crc);
            chain_from.push(crc32c::crc32c_append(self.crc, rec.data()));
        }
        // Later frames: one whose CRC continues from the failing record, or two in a row that
        // chain to each other. etcd pads every frame, so they start 8-byte aligned in the
        // file; a damaged length field may have misaligned `off` itself, so look at offsets
        // aligned like it too.
        let end = b.iter().rposition(|&x| x != 0)? + 1;
        let aligned = start.next_multiple_of(8);
        let candidates = (aligned..end)
            .step_by(8)
            .chain((start..end).step_by(8).filter(|p| p % 8 != 0));
        for p in candidates {
            if let Some((rec, next)) = whole_frame(b, p) {
                if rec.kind != RecordType::Crc as i64 {
                    let follows = chain_from
                        .iter()
                        .any(|&c| crc32c::crc32c_append(c, rec.data()) == rec.crc);
                    if follows {
                        return Some(format!("a whole record at byte {p} continues the log"));
                    }
                }
                if let Some((succ, _)) = whole_frame(b, next) {
                    if succ.kind != RecordType::Crc as i64
                        && crc32c::crc32c_append(rec.crc, succ.data()) == succ.crc
                    {
                        return Some(format!("whole records at bytes {p} and {next} follow"));
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::encode_frame;
    use super::*;

    /// A segment of `n` chained entry-like records, then `zeros` bytes of preallocated space;
    /// returns it and each frame's offset.
    fn segment(n: usize, zeros: usize) -> (Vec<u8>, Vec<usize>) {
        let mut b = Vec::new();
        let mut offs = Vec::new();
        encode_frame(&mut b, RecordType::Crc, 0, None);
        let mut crc = 0;
        for i in 0..n {
            offs.push(b.len());
            let data = format!("record number {i}").into_bytes();
            crc = crc32c::crc32c_append(crc, &data);
            encode_frame(&mut b, RecordType::Metadata, crc, Some(&data));
        }
        b.resize(b.len() + zeros, 0);
        (b, offs)
    }

    fn decode(b: &[u8], last: bool) -> Result<(usize, Step<'_>), WalError> {
        let mut d = SegmentDecoder::new(b, Path::new("seg.wal"), last, 0);
        let mut n = 0;
        loop {
            match d.next_step()? {
                Step::Record { .. } => n += 1,
                end => return Ok((n, end)),
            }
        }
    }

    #[test]
    fn clean_end_at_preallocated_space_and_eof() {
        let (b, _) = segment(3, 4096);
        let (n, end) = decode(&b, true).unwrap();
        assert_eq!(n, 4);
        assert!(matches!(end, Step::End { off } if off as usize == b.len() - 4096));
        let (b, _) = segment(3, 0);
        assert!(matches!(decode(&b, false).unwrap(), (4, Step::End { .. })));
    }

    /// Frames written before etcd padded them (length field without the pad flag, records
    /// back to back) still decode.
    #[test]
    fn unpadded_frames_still_decode() {
        let mut b = Vec::new();
        let mut crc = 0;
        for data in [&b"one"[..], b"three", b"seven!!"] {
            crc = crc32c::crc32c_append(crc, data);
            let mut f = Vec::new();
            encode_frame(&mut f, RecordType::Metadata, crc, Some(data));
            let n = f.len() - 8 - usize::from(f[7] & 7);
            b.extend_from_slice(&(n as u64).to_le_bytes());
            b.extend_from_slice(&f[8..8 + n]);
        }
        let (n, end) = decode(&b, true).unwrap();
        assert_eq!(n, 3);
        assert!(matches!(end, Step::End { off } if off as usize == b.len()));
    }

    #[test]
    fn torn_tail_only_in_the_last_segment() {
        let (b, offs) = segment(3, 0);
        let cut = &b[..b.len() - 3];
        let (n, end) = decode(cut, true).unwrap();
        assert_eq!(n, 3);
        assert!(matches!(end, Step::Torn { off, .. } if off as usize == offs[2]));
        let err = decode(cut, false).unwrap_err();
        assert_eq!(err.offset(), Some(offs[2] as u64));
    }

    #[test]
    fn zero_sector_detection_follows_file_offsets() {
        let mut data = vec![1u8; 1024];
        assert!(!has_zero_sector(&data, 0));
        data[512..1024].fill(0);
        assert!(has_zero_sector(&data, 0));
        // Shifted by 8: the zero run covers [520, 1032) of the file, no whole sector of it
        // except the piece up to the end of the data.
        let mut d2 = vec![1u8; 1016];
        d2[504..].fill(0);
        assert!(has_zero_sector(&d2, 8));
        d2[1015] = 1;
        assert!(!has_zero_sector(&d2, 8));
    }

    #[test]
    fn damaged_length_in_front_of_whole_records_is_not_a_tear() {
        let (mut b, offs) = segment(4, 8192);
        // Grow the second record's length so that the frame swallows the rest of the log and
        // reaches into the zeroed space: shaped like a torn write, but records follow.
        let mut lf = u64_at(&b, offs[1]).unwrap();
        lf |= 1 << 12;
        b[offs[1]..offs[1] + 8].copy_from_slice(&lf.to_le_bytes());
        let err = decode(&b, true).unwrap_err();
        assert_eq!(err.offset(), Some(offs[1] as u64), "{err}");
    }
}

//! The protobuf wire format at its smallest: a varint writer and a schema-less field reader.
//!
//! For the bytes Glass must write exactly as etcd's gogo-generated code does (WAL records,
//! raftpb entries and hard states), where prost's encoding differs (gogo writes non-nullable
//! zero fields, prost leaves them out). Reading is strict about framing and never panics.

use std::fmt;

/// Why bytes are not the protobuf they should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoError(pub &'static str);

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ProtoError {}

/// Appends `v` as a protobuf varint.
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A value read off the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// A minimal protobuf reader: fields in wire order, no schema.
pub struct ProtoReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> ProtoReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        ProtoReader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Whether every byte was read.
    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// One varint.
    pub fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(ProtoError("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(ProtoError("varint overflows 64 bits"))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], ProtoError> {
        let n = usize::try_from(n).map_err(|_| ProtoError("length too large"))?;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(ProtoError("field runs past the end"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next field, or `None` at the end of the buffer.
    pub fn next_field(&mut self) -> Result<Option<(u64, Wire<'a>)>, ProtoError> {
        if self.at_end() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err(ProtoError("illegal field number 0"));
        }
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(self.take(8)?);
                Wire::Fixed64(u64::from_le_bytes(a))
            }
            2 => {
                let n = self.varint()?;
                Wire::Bytes(self.take(n)?)
            }
            5 => {
                let mut a = [0u8; 4];
                a.copy_from_slice(self.take(4)?);
                Wire::Fixed32(u32::from_le_bytes(a))
            }
            // Groups (3, 4) appear in none of etcd's messages.
            _ => return Err(ProtoError("unsupported wire type")),
        };
        Ok(Some((field, wire)))
    }
}

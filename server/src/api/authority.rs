//! A connection wrapper that repairs the `:authority` etcd's own clients send, so that the
//! HTTP/2 server underneath (h2) accepts their requests.
//!
//! # Why
//! etcd 3.4's etcdctl dials every endpoint of `endpoint status`, `endpoint hashkv` and `defrag`
//! through grpc-go's `passthrough` resolver with the whole endpoint URL as the target, so the
//! HTTP/2 `:authority` it sends is `http://127.0.0.1:2379`; etcd clientv3 3.5.0 sends
//! `#initially=[http://127.0.0.1:2379;...]` (etcd issue #13192). Neither is an RFC 3986
//! authority. etcd's Go server never looks at it; h2 (0.4, under hyper and tonic) parses it with
//! `http::uri::Authority` and resets the stream with `PROTOCOL_ERROR` when that fails, which
//! etcdctl reports as `rpc error: code = Internal desc = stream terminated by RST_STREAM with
//! error code: PROTOCOL_ERROR`. h2 has no switch for this, and Glass does not fork it.
//!
//! So the bytes the client sends are rewritten before h2 reads them. [`AuthorityFix`] sits
//! between the accepted socket and tonic:
//! - a connection that does not open with the HTTP/2 client preface (HTTP/1.1 for `/metrics`,
//!   `/health`, curl) passes through untouched, both ways, from its first byte on;
//! - on an HTTP/2 connection every frame passes through unchanged except HEADERS and the
//!   CONTINUATIONs that complete it: their header block is HPACK-decoded with the client's
//!   dynamic table (a decoder that lives as long as the connection) and encoded again with only
//!   static-table indexes and literals that are not indexed — nothing is ever inserted into h2's
//!   dynamic table, so it stays empty and never disagrees with ours. On the way an invalid
//!   `:authority` is repaired: a `scheme://` prefix, etcd 3.5's `#initially=[...]` wrapper (the
//!   first URL is kept) and any path are stripped; a value that is still no authority is
//!   dropped (a request needs none);
//! - bytes the server writes pass through untouched.
//!
//! A block that cannot be decoded (or is unreasonably large) is handed on as it came, and from
//! there on everything passes through: h2 then reports its own protocol error, as it would have
//! without this wrapper.
//!
//! # The HTTP/2 frame header (RFC 9113 §4.1), 9 bytes, big-endian
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 3 | payload length (u24), not counting these 9 bytes |
//! | 3 | 1 | type: `0x1` HEADERS, `0x9` CONTINUATION (the two rewritten here), others forwarded |
//! | 4 | 1 | flags: `0x1` END_STREAM, `0x4` END_HEADERS, `0x8` PADDED, `0x20` PRIORITY |
//! | 5 | 4 | reserved bit, then the stream id (u31) |
//!
//! A HEADERS payload is `[pad length: 1 if PADDED] [E + stream dependency: 4, weight: 1 if
//! PRIORITY] header block fragment [padding]`; a CONTINUATION payload is a fragment alone. The
//! rewritten HEADERS keeps END_STREAM and the priority fields, loses the padding, and is split
//! into CONTINUATIONs when the new block is longer than 16384 bytes (the smallest
//! SETTINGS_MAX_FRAME_SIZE, which every peer accepts).
//!
//! # Cost
//! Frames other than HEADERS are copied once (socket → our read buffer → the caller), or not at
//! all when a DATA payload is longer than the caller's buffer (read straight into it). The
//! header block is decoded and encoded in one pass into buffers reused for the connection's
//! life; Huffman strings are decoded four bits at a time through a table built at compile time
//! from the code lengths of RFC 7541 Appendix B.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// What every HTTP/2 connection with prior knowledge starts with (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// The largest frame payload written: the initial SETTINGS_MAX_FRAME_SIZE.
const MAX_FRAME_PAYLOAD: usize = 16_384;
/// h2's SETTINGS_HEADER_TABLE_SIZE (the default, which hyper and tonic keep): the client's
/// encoder may not make its table larger than this.
const HEADER_TABLE_SIZE: usize = 4_096;
/// A header block (as received, or as re-encoded) larger than this is handed on untouched;
/// hyper refuses header lists over 16 KiB anyway.
const MAX_BLOCK: usize = 1 << 20;
/// The read buffer. Bigger reads than this go straight into the caller's buffer when they are
/// all payload of a forwarded frame.
const READ_BUF: usize = 16 * 1024;

/// An accepted connection whose HTTP/2 request headers are rewritten on the way in (see the
/// module doc). Writes pass through.
pub struct AuthorityFix<S> {
    io: S,
    fixer: Fixer,
    /// Bytes read from `io` and not yet looked at: `rbuf[rstart..rend]`.
    rbuf: Box<[u8]>,
    rstart: usize,
    rend: usize,
}

impl<S> AuthorityFix<S> {
    pub fn new(io: S) -> Self {
        AuthorityFix {
            io,
            fixer: Fixer::new(),
            rbuf: vec![0; READ_BUF].into_boxed_slice(),
            rstart: 0,
            rend: 0,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.io
    }
}

impl<S> std::fmt::Debug for AuthorityFix<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorityFix")
            .field("state", &self.fixer.state)
            .field("buffered", &(self.rend - self.rstart))
            .finish_non_exhaustive()
    }
}

impl<S: Connected> Connected for AuthorityFix<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        loop {
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            // Output the fixer made (a rewritten block, a held-back frame header) comes first:
            // it stands before everything still unread.
            if this.fixer.take_out(buf) {
                continue;
            }
            if this.rstart < this.rend {
                let end = this.rend.min(this.rstart + buf.remaining());
                let step = this.fixer.step(&this.rbuf[this.rstart..end]);
                if let Step::Pass(n) = step {
                    buf.put_slice(&this.rbuf[this.rstart..this.rstart + n]);
                }
                this.rstart += step.len();
                if this.rstart == this.rend {
                    (this.rstart, this.rend) = (0, 0);
                }
                continue;
            }
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
            // Nothing buffered: read. When all the caller can take is payload to forward, it
            // goes straight into the caller's buffer.
            if this.fixer.pass_len() >= buf.remaining() {
                ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
                let n = buf.filled().len() - before;
                this.fixer.passed(n);
                return Poll::Ready(Ok(()));
            }
            let mut rb = ReadBuf::new(&mut this.rbuf);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                return Poll::Ready(Ok(())); // end of stream
            }
            (this.rstart, this.rend) = (0, n);
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------------------------------------
// The frame state machine.

/// What one [`Fixer::step`] did with the front of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// These bytes go to the reader unchanged.
    Pass(usize),
    /// These bytes were taken in; what replaces them (if anything) is in `out`.
    Absorb(usize),
}

impl Step {
    fn len(self) -> usize {
        match self {
            Step::Pass(n) | Step::Absorb(n) => n,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Matching the client preface: this many bytes matched so far.
    Preface(usize),
    /// At a frame boundary (`hdr_len` bytes of a header split across reads in `hdr`).
    FrameHead,
    /// Inside the payload of a forwarded frame: bytes left.
    Payload(usize),
    /// Inside the payload of a HEADERS or CONTINUATION being collected into `raw`.
    Block { left: usize, end_headers: bool },
    /// Expecting the header of the next CONTINUATION (collected into `raw`; `hdr_len` bytes so
    /// far).
    ContinuationHead,
    /// Not HTTP/2 with prior knowledge, or given up: everything passes.
    Passthrough,
}

struct Fixer {
    state: State,
    /// A frame header split across reads.
    hdr: [u8; FRAME_HEADER_LEN],
    hdr_len: usize,
    /// The HEADERS frame and its CONTINUATIONs as received, headers included.
    raw: Vec<u8>,
    /// Bytes to hand out before any further input: `out[out_pos..]`.
    out: Vec<u8>,
    out_pos: usize,
    /// The fragments of the block, joined (only when there are CONTINUATIONs).
    block: Vec<u8>,
    /// The block re-encoded.
    enc: Vec<u8>,
    hpack: Hpack,
}

impl Fixer {
    fn new() -> Self {
        Fixer {
            state: State::Preface(0),
            hdr: [0; FRAME_HEADER_LEN],
            hdr_len: 0,
            raw: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            block: Vec::new(),
            enc: Vec::new(),
            hpack: Hpack::new(),
        }
    }

    /// Copies pending output into `buf`; false when there was none.
    fn take_out(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.out_pos == self.out.len() {
            return false;
        }
        let n = buf.remaining().min(self.out.len() - self.out_pos);
        buf.put_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            shrink(&mut self.out);
        }
        true
    }

    /// How many bytes from here on pass unchanged for sure.
    fn pass_len(&self) -> usize {
        match self.state {
            State::Payload(left) => left,
            State::Passthrough => usize::MAX,
            _ => 0,
        }
    }

    /// `n` bytes (no more than [`Fixer::pass_len`]) went to the reader unread by us.
    fn passed(&mut self, n: usize) {
        if let State::Payload(left) = self.state {
            self.state = if n >= left {
                State::FrameHead
            } else {
                State::Payload(left - n)
            };
        }
    }

    /// Takes in the front of `input` (never empty); see [`Step`].
    fn step(&mut self, input: &[u8]) -> Step {
        match self.state {
            State::Passthrough => Step::Pass(input.len()),
            State::Preface(matched) => {
                let want = &PREFACE[matched..];
                let n = want.len().min(input.len());
                if input[..n] != want[..n] {
                    self.state = State::Passthrough;
                    return Step::Pass(input.len());
                }
                self.state = if matched + n == PREFACE.len() {
                    State::FrameHead
                } else {
                    State::Preface(matched + n)
                };
                Step::Pass(n)
            }
            State::Payload(left) => {
                let n = left.min(input.len());
                self.passed(n);
                Step::Pass(n)
            }
            State::FrameHead => {
                if self.hdr_len == 0 && input.len() >= FRAME_HEADER_LEN {
                    let head = FrameHead::parse(&input[..FRAME_HEADER_LEN]);
                    if head.kind != TYPE_HEADERS {
                        self.state = after_head(head.len);
                        return Step::Pass(FRAME_HEADER_LEN);
                    }
                    self.raw.clear();
                    self.raw.extend_from_slice(&input[..FRAME_HEADER_LEN]);
                    self.block_payload(head);
                    return Step::Absorb(FRAME_HEADER_LEN);
                }
                let n = (FRAME_HEADER_LEN - self.hdr_len).min(input.len());
                self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&input[..n]);
                self.hdr_len += n;
                if self.hdr_len == FRAME_HEADER_LEN {
                    self.hdr_len = 0;
                    let head = FrameHead::parse(&self.hdr);
                    if head.kind == TYPE_HEADERS {
                        self.raw.clear();
                        self.raw.extend_from_slice(&self.hdr);
                        self.block_payload(head);
                    } else {
                        self.out.extend_from_slice(&self.hdr);
                        self.state = after_head(head.len);
                    }
                }
                Step::Absorb(n)
            }
            State::Block { left, end_headers } => {
                let n = left.min(input.len());
                self.raw.extend_from_slice(&input[..n]);
                if n < left {
                    self.state = State::Block {
                        left: left - n,
                        end_headers,
                    };
                } else if end_headers {
                    self.finish_block();
                } else {
                    self.state = State::ContinuationHead;
                }
                Step::Absorb(n)
            }
            State::ContinuationHead => {
                let n = (FRAME_HEADER_LEN - self.hdr_len).min(input.len());
                self.raw.extend_from_slice(&input[..n]);
                self.hdr_len += n;
                if self.hdr_len == FRAME_HEADER_LEN {
                    self.hdr_len = 0;
                    let head = FrameHead::parse(&self.raw[self.raw.len() - FRAME_HEADER_LEN..]);
                    let first = FrameHead::parse(&self.raw[..FRAME_HEADER_LEN]);
                    if head.kind == TYPE_CONTINUATION && head.stream == first.stream {
                        self.block_payload(head);
                    } else {
                        self.give_up();
                    }
                }
                Step::Absorb(n)
            }
        }
    }

    /// After the header of a HEADERS or CONTINUATION frame (already in `raw`).
    fn block_payload(&mut self, head: FrameHead) {
        if self.raw.len() + head.len > MAX_BLOCK {
            return self.give_up();
        }
        let end_headers = head.flags & FLAG_END_HEADERS != 0;
        self.state = State::Block {
            left: head.len,
            end_headers,
        };
        if head.len == 0 {
            if end_headers {
                self.finish_block();
            } else {
                self.state = State::ContinuationHead;
            }
        }
    }

    /// Hands on what was collected as it came, and lets everything pass from now on.
    fn give_up(&mut self) {
        self.out.extend_from_slice(&self.raw);
        self.raw.clear();
        self.state = State::Passthrough;
    }

    /// The whole block is in `raw`: re-encode it into `out` as new frames.
    fn finish_block(&mut self) {
        match self.rewrite() {
            Ok(()) => {
                self.raw.clear();
                shrink(&mut self.raw);
                shrink(&mut self.block);
                shrink(&mut self.enc);
                self.state = State::FrameHead;
            }
            Err(_) => self.give_up(),
        }
    }

    fn rewrite(&mut self) -> Result<(), HpackError> {
        let raw = &self.raw[..];
        let head = FrameHead::parse(&raw[..FRAME_HEADER_LEN]);
        let mut payload = &raw[FRAME_HEADER_LEN..FRAME_HEADER_LEN + head.len];
        if head.flags & FLAG_PADDED != 0 {
            let (&pad, rest) = payload.split_first().ok_or(HpackError::Frame)?;
            let keep = rest
                .len()
                .checked_sub(usize::from(pad))
                .ok_or(HpackError::Frame)?;
            payload = &rest[..keep];
        }
        let priority_len = if head.flags & FLAG_PRIORITY != 0 {
            5
        } else {
            0
        };
        if payload.len() < priority_len {
            return Err(HpackError::Frame);
        }
        let (priority, fragment) = payload.split_at(priority_len);
        let mut at = FRAME_HEADER_LEN + head.len;
        let block = if at == raw.len() {
            fragment
        } else {
            self.block.clear();
            self.block.extend_from_slice(fragment);
            while at < raw.len() {
                let cont = FrameHead::parse(&raw[at..at + FRAME_HEADER_LEN]);
                at += FRAME_HEADER_LEN;
                self.block.extend_from_slice(&raw[at..at + cont.len]);
                at += cont.len;
            }
            &self.block[..]
        };
        self.enc.clear();
        self.hpack.rewrite(block, &mut self.enc)?;

        let stream = &raw[5..FRAME_HEADER_LEN];
        let enc = &self.enc[..];
        let first_len = enc.len().min(MAX_FRAME_PAYLOAD - priority_len);
        let (first, rest) = enc.split_at(first_len);
        let mut flags = head.flags & !(FLAG_PADDED | FLAG_END_HEADERS);
        if rest.is_empty() {
            flags |= FLAG_END_HEADERS;
        }
        let out = &mut self.out;
        out.reserve(
            enc.len() + priority_len + FRAME_HEADER_LEN * (1 + rest.len() / MAX_FRAME_PAYLOAD + 1),
        );
        put_frame_head(out, priority_len + first.len(), TYPE_HEADERS, flags, stream);
        out.extend_from_slice(priority);
        out.extend_from_slice(first);
        let mut chunks = rest.chunks(MAX_FRAME_PAYLOAD).peekable();
        while let Some(chunk) = chunks.next() {
            let flags = if chunks.peek().is_none() {
                FLAG_END_HEADERS
            } else {
                0
            };
            put_frame_head(out, chunk.len(), TYPE_CONTINUATION, flags, stream);
            out.extend_from_slice(chunk);
        }
        Ok(())
    }
}

fn after_head(len: usize) -> State {
    if len == 0 {
        State::FrameHead
    } else {
        State::Payload(len)
    }
}

/// Buffers are kept for the connection's life, but not at the size of one outsized block.
fn shrink(v: &mut Vec<u8>) {
    if v.capacity() > 4 * MAX_FRAME_PAYLOAD && v.is_empty() {
        v.shrink_to(MAX_FRAME_PAYLOAD);
    }
}

#[derive(Debug, Clone, Copy)]
struct FrameHead {
    len: usize,
    kind: u8,
    flags: u8,
    /// With the reserved bit, as on the wire.
    stream: u32,
}

impl FrameHead {
    /// `b` is exactly [`FRAME_HEADER_LEN`] bytes.
    fn parse(b: &[u8]) -> FrameHead {
        FrameHead {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]),
        }
    }
}

fn put_frame_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: &[u8]) {
    let len = (len as u32).to_be_bytes();
    out.extend_from_slice(&[len[1], len[2], len[3], kind, flags]);
    out.extend_from_slice(stream);
}

// ---------------------------------------------------------------------------------------------
// HPACK (RFC 7541): the decoder of the client's blocks and the table-free encoder for h2.

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum HpackError {
    #[error("malformed HEADERS frame")]
    Frame,
    #[error("truncated header block")]
    Truncated,
    #[error("integer overflow")]
    Overflow,
    #[error("invalid table index")]
    Index,
    #[error("invalid Huffman string")]
    Huffman,
    #[error("dynamic table size update not allowed here")]
    SizeUpdate,
    #[error("header block too large")]
    TooLarge,
}

/// The client's side of the connection's HPACK context, and scratch space.
struct Hpack {
    table: DynamicTable,
    /// Huffman-decoded (or copied) name and value of the current field.
    name: Vec<u8>,
    value: Vec<u8>,
    /// The last `:authority` value seen valid, so that the next equal one is not parsed again.
    good_authority: Vec<u8>,
}

/// Where a field's name comes from.
#[derive(Clone, Copy)]
enum NameRef {
    /// Static table index (1..=61).
    Static(usize),
    /// Dynamic table index (0 = newest).
    Dynamic(usize),
    /// A string literal (decoded into `Hpack::name`).
    Literal,
}

impl Hpack {
    fn new() -> Self {
        Hpack {
            table: DynamicTable::new(HEADER_TABLE_SIZE),
            name: Vec::new(),
            value: Vec::new(),
            good_authority: Vec::new(),
        }
    }

    /// Decodes `block` with the connection's table and appends its fields to `enc`, encoded with
    /// the static table alone, `:authority` repaired.
    fn rewrite(&mut self, block: &[u8], enc: &mut Vec<u8>) -> Result<(), HpackError> {
        let mut p = 0;
        let mut fields = false;
        while p < block.len() {
            if enc.len() > MAX_BLOCK {
                return Err(HpackError::TooLarge);
            }
            let b = block[p];
            if b & 0x80 != 0 {
                // Indexed field (§6.1).
                let (index, n) = integer(&block[p..], 7)?;
                p += n;
                fields = true;
                if index == 0 {
                    return Err(HpackError::Index);
                }
                if index <= STATIC_TABLE.len() {
                    if index == AUTHORITY {
                        emit_authority(&mut self.good_authority, b"", false, enc);
                    } else {
                        put_integer(enc, index, 7, 0x80);
                    }
                    continue;
                }
                let e = self.table.get(index - STATIC_TABLE.len() - 1)?;
                let (name, value) = self.table.field(&e);
                if usize::from(e.static_name) == AUTHORITY {
                    emit_authority(&mut self.good_authority, value, false, enc);
                } else if e.static_full != 0 {
                    put_integer(enc, usize::from(e.static_full), 7, 0x80);
                } else {
                    put_literal(enc, usize::from(e.static_name), name, value, false);
                }
                continue;
            }
            let (prefix, index_it, never) = if b & 0x40 != 0 {
                (6, true, false) // literal with incremental indexing (§6.2.1)
            } else if b & 0x20 != 0 {
                // Dynamic table size update (§6.3): only before the first field.
                let (size, n) = integer(&block[p..], 5)?;
                p += n;
                if fields || size > HEADER_TABLE_SIZE {
                    return Err(HpackError::SizeUpdate);
                }
                self.table.set_max_size(size);
                continue;
            } else {
                (4, false, b & 0x10 != 0) // without indexing, never indexed (§6.2.2, §6.2.3)
            };
            fields = true;
            let (index, n) = integer(&block[p..], prefix)?;
            p += n;
            let name_ref = if index == 0 {
                p += string(&block[p..], &mut self.name)?;
                NameRef::Literal
            } else if index <= STATIC_TABLE.len() {
                NameRef::Static(index)
            } else {
                NameRef::Dynamic(index - STATIC_TABLE.len() - 1)
            };
            p += string(&block[p..], &mut self.value)?;

            let (static_name, name): (usize, &[u8]) = match name_ref {
                NameRef::Static(i) => (i, STATIC_TABLE[i - 1].0),
                NameRef::Literal => (static_name_index(&self.name), &self.name),
                NameRef::Dynamic(i) => {
                    let e = self.table.get(i)?;
                    self.name.clear();
                    self.name.extend_from_slice(self.table.field(&e).0);
                    (usize::from(e.static_name), &self.name)
                }
            };
            let static_full = static_full_index(static_name, &self.value);
            if static_name == AUTHORITY {
                emit_authority(&mut self.good_authority, &self.value, never, enc);
            } else if static_full != 0 && !never {
                put_integer(enc, static_full, 7, 0x80);
            } else {
                put_literal(enc, static_name, name, &self.value, never);
            }
            if index_it {
                // Neither is in the table's arena: it may evict freely.
                let name = match name_ref {
                    NameRef::Static(i) => STATIC_TABLE[i - 1].0,
                    _ => &self.name[..],
                };
                self.table
                    .insert(name, &self.value, static_name as u8, static_full as u8);
            }
        }
        Ok(())
    }
}

/// Writes `:authority: value`, repaired if h2 would refuse it, or nothing when there is nothing
/// to repair it into. `good` is the last value found valid.
fn emit_authority(good: &mut Vec<u8>, value: &[u8], never: bool, enc: &mut Vec<u8>) {
    let value = if !value.is_empty() && value == &good[..] {
        value
    } else if valid_authority(value) {
        good.clear();
        good.extend_from_slice(value);
        value
    } else {
        match repair_authority(value) {
            Some(v) => v,
            None => return,
        }
    };
    put_literal(enc, AUTHORITY, b"", value, never);
}

/// What h2 checks (`http::uri::Authority`, which also refuses an empty one).
fn valid_authority(v: &[u8]) -> bool {
    ::http::uri::Authority::try_from(v).is_ok()
}

/// `http://h:p/path` → `h:p`; `#initially=[http://a:1;http://b:2]` → `a:1`; `None` when what is
/// left is still no authority.
fn repair_authority(v: &[u8]) -> Option<&[u8]> {
    let mut v = v;
    if let Some(rest) = v.strip_prefix(b"#initially=[") {
        let rest = rest.strip_suffix(b"]").unwrap_or(rest);
        let end = rest.iter().position(|&c| c == b';').unwrap_or(rest.len());
        v = &rest[..end];
    }
    if let Some(i) = v.windows(3).position(|w| w == b"://") {
        v = &v[i + 3..];
    }
    if let Some(i) = v.iter().position(|&c| matches!(c, b'/' | b'?' | b'#')) {
        v = &v[..i];
    }
    valid_authority(v).then_some(v)
}

/// Decodes an integer with an `n`-bit prefix (§5.1): (value, bytes used).
fn integer(src: &[u8], n: u8) -> Result<(usize, usize), HpackError> {
    let mask = (1usize << n) - 1;
    let first = usize::from(*src.first().ok_or(HpackError::Truncated)?) & mask;
    if first < mask {
        return Ok((first, 1));
    }
    let mut value = mask;
    for (i, &b) in src[1..].iter().enumerate() {
        // Four continuation bytes reach 2^28 + 2^8: more than any length or index in a block.
        if i == 4 {
            return Err(HpackError::Overflow);
        }
        value += usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 2));
        }
    }
    Err(HpackError::Truncated)
}

/// Decodes a string literal (§5.2) into `out`: bytes used.
fn string(src: &[u8], out: &mut Vec<u8>) -> Result<usize, HpackError> {
    let huffman = src.first().ok_or(HpackError::Truncated)? & 0x80 != 0;
    let (len, n) = integer(src, 7)?;
    let data = src.get(n..n + len).ok_or(HpackError::Truncated)?;
    out.clear();
    if huffman {
        huffman_decode(data, out)?;
    } else {
        out.extend_from_slice(data);
    }
    Ok(n + len)
}

fn put_integer(out: &mut Vec<u8>, mut v: usize, n: u8, first: u8) {
    let mask = (1usize << n) - 1;
    if v < mask {
        out.push(first | v as u8);
        return;
    }
    out.push(first | mask as u8);
    v -= mask;
    while v >= 0x80 {
        out.push(0x80 | (v & 0x7f) as u8);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A literal field not indexed (or never indexed), its name by static index when it has one.
fn put_literal(out: &mut Vec<u8>, static_name: usize, name: &[u8], value: &[u8], never: bool) {
    let first = if never { 0x10 } else { 0x00 };
    if static_name != 0 {
        put_integer(out, static_name, 4, first);
    } else {
        out.push(first);
        put_integer(out, name.len(), 7, 0);
        out.extend_from_slice(name);
    }
    put_integer(out, value.len(), 7, 0);
    out.extend_from_slice(value);
}

/// The static table (RFC 7541 Appendix A), 1-based on the wire.
const STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// `:authority`'s static index.
const AUTHORITY: usize = 1;

/// The first static index with this name, or 0.
fn static_name_index(name: &[u8]) -> usize {
    STATIC_TABLE
        .iter()
        .position(|(n, _)| *n == name)
        .map_or(0, |i| i + 1)
}

/// The static index of exactly this field (its name given by `static_name`), or 0.
fn static_full_index(static_name: usize, value: &[u8]) -> usize {
    if static_name == 0 {
        return 0;
    }
    let name = STATIC_TABLE[static_name - 1].0;
    STATIC_TABLE[static_name - 1..]
        .iter()
        .take_while(|(n, _)| *n == name)
        .position(|(_, v)| *v == value)
        .map_or(0, |i| static_name + i)
}

/// The client's dynamic table (§2.3.2, §4). Entries live in one byte arena, oldest first, so
/// that inserting allocates nothing once the arena has grown to the table's size.
struct DynamicTable {
    data: Vec<u8>,
    /// Oldest at the front.
    entries: VecDeque<Entry>,
    /// §4.1: the names' and values' lengths plus 32 per entry.
    size: usize,
    max_size: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    at: usize,
    name_len: usize,
    value_len: usize,
    /// The static index of the name, and of the whole field, or 0: worked out once, at insertion.
    static_name: u8,
    static_full: u8,
}

impl DynamicTable {
    fn new(max_size: usize) -> Self {
        DynamicTable {
            data: Vec::new(),
            entries: VecDeque::new(),
            size: 0,
            max_size,
        }
    }

    /// Entry `i`, 0 being the newest.
    fn get(&self, i: usize) -> Result<Entry, HpackError> {
        let len = self.entries.len();
        if i >= len {
            return Err(HpackError::Index);
        }
        Ok(self.entries[len - 1 - i])
    }

    fn field(&self, e: &Entry) -> (&[u8], &[u8]) {
        let name = &self.data[e.at..e.at + e.name_len];
        let value = &self.data[e.at + e.name_len..e.at + e.name_len + e.value_len];
        (name, value)
    }

    fn set_max_size(&mut self, max: usize) {
        self.max_size = max;
        self.evict_to(max);
    }

    fn evict_to(&mut self, size: usize) {
        while self.size > size {
            match self.entries.pop_front() {
                Some(e) => self.size -= e.name_len + e.value_len + 32,
                None => self.size = 0,
            }
        }
        match self.entries.front() {
            None => self.data.clear(),
            // Reclaim the evicted bytes once they are most of the arena.
            Some(&Entry { at, .. }) if at > self.max_size && at > self.data.len() / 2 => {
                self.data.drain(..at);
                for e in &mut self.entries {
                    e.at -= at;
                }
            }
            Some(_) => {}
        }
    }

    fn insert(&mut self, name: &[u8], value: &[u8], static_name: u8, static_full: u8) {
        let size = name.len() + value.len() + 32;
        if size > self.max_size {
            // §4.4: an entry larger than the table empties it and is not added.
            self.entries.clear();
            self.data.clear();
            self.size = 0;
            return;
        }
        // `name` and `value` are never in `data`: evicting first is safe.
        self.evict_to(self.max_size - size);
        let at = self.data.len();
        self.data.extend_from_slice(name);
        self.data.extend_from_slice(value);
        self.entries.push_back(Entry {
            at,
            name_len: name.len(),
            value_len: value.len(),
            static_name,
            static_full,
        });
        self.size += size;
    }
}

// ---------------------------------------------------------------------------------------------
// Huffman decoding (RFC 7541 §5.2, Appendix B).

/// The code length of every symbol, 0..=255 and EOS (256), from RFC 7541 Appendix B. The code
/// is canonical (within a length, codes rise with the symbol; shorter codes come first), so the
/// lengths alone give the codes: see [`huffman_codes`].
#[rustfmt::skip]
const HUFFMAN_LEN: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //   0
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //  16
     6, 10, 10, 12, 13,  6,  8, 11, 10, 10,  8, 11,  8,  6,  6,  6, //  32 ' '
     5,  5,  5,  6,  6,  6,  6,  6,  6,  6,  7,  8, 15,  6, 12, 10, //  48 '0'
    13,  6,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7, //  64 '@'
     7,  7,  7,  7,  7,  7,  7,  7,  8,  7,  8, 13, 19, 13, 14,  6, //  80 'P'
    15,  5,  6,  5,  6,  5,  6,  6,  6,  5,  7,  7,  6,  6,  6,  5, //  96 '`'
     6,  7,  6,  5,  5,  6,  7,  7,  7,  7,  7, 15, 11, 14, 13, 28, // 112 'p'
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240
    30,                                                             // EOS
];

const EOS: usize = 256;

/// The canonical code of every symbol, right-aligned.
const fn huffman_codes() -> [u32; 257] {
    let mut codes = [0u32; 257];
    let mut code = 0u32;
    let mut len = 1;
    while len <= 30 {
        let mut sym = 0;
        while sym < 257 {
            if HUFFMAN_LEN[sym] as u32 == len {
                codes[sym] = code;
                code += 1;
            }
            sym += 1;
        }
        code <<= 1;
        len += 1;
    }
    codes
}

const HUFFMAN_CODES: [u32; 257] = huffman_codes();

/// A child in the decoding tree: an inner node's number, or `LEAF | symbol`.
const LEAF: u16 = 0x8000;

/// The decoding tree: 256 inner nodes (257 leaves), node 0 the root.
const fn huffman_tree() -> [[u16; 2]; 256] {
    let mut tree = [[0u16; 2]; 256];
    let mut next = 1u16;
    let mut sym = 0;
    while sym < 257 {
        let code = HUFFMAN_CODES[sym];
        let len = HUFFMAN_LEN[sym] as u32;
        let mut node = 0usize;
        let mut i = len;
        while i > 0 {
            i -= 1;
            let bit = ((code >> i) & 1) as usize;
            if i == 0 {
                assert!(tree[node][bit] == 0, "Huffman code is not prefix-free");
                tree[node][bit] = LEAF | sym as u16;
            } else {
                if tree[node][bit] == 0 {
                    assert!(next < 256, "Huffman code is not complete");
                    tree[node][bit] = next;
                    next += 1;
                }
                assert!(
                    tree[node][bit] & LEAF == 0,
                    "Huffman code is not prefix-free"
                );
                node = tree[node][bit] as usize;
            }
        }
        sym += 1;
    }
    assert!(next == 256, "Huffman code is not complete");
    tree
}

/// One transition of the decoder: from an inner node, four bits.
#[derive(Clone, Copy)]
struct Nibble {
    next: u8,
    sym: u8,
    flags: u8,
}

/// A symbol was completed (in `sym`).
const EMIT: u8 = 1;
/// The bits spelled EOS: an error (§5.2).
const FAIL: u8 = 2;
/// The string may end here: at a symbol boundary, or in at most 7 bits of EOS's prefix.
const ACCEPT: u8 = 4;

const fn huffman_nibbles() -> [[Nibble; 16]; 256] {
    let tree = huffman_tree();
    // The nodes reached from the root by 1 to 7 one-bits: padding may stop there.
    let mut accept = [false; 256];
    accept[0] = true;
    let mut node = 0usize;
    let mut depth = 0;
    while depth < 7 {
        node = tree[node][1] as usize;
        accept[node] = true;
        depth += 1;
    }
    let empty = Nibble {
        next: 0,
        sym: 0,
        flags: 0,
    };
    let mut table = [[empty; 16]; 256];
    let mut state = 0;
    while state < 256 {
        let mut nibble = 0;
        while nibble < 16 {
            let mut node = state;
            let mut t = empty;
            let mut k = 4;
            while k > 0 {
                k -= 1;
                let child = tree[node][(nibble >> k) & 1];
                if child & LEAF != 0 {
                    let sym = (child & !LEAF) as usize;
                    if sym == EOS {
                        t.flags |= FAIL;
                        break;
                    }
                    // Codes are at least 5 bits long: one symbol per nibble at most.
                    t.flags |= EMIT;
                    t.sym = sym as u8;
                    node = 0;
                } else {
                    node = child as usize;
                }
            }
            t.next = node as u8;
            if accept[node] {
                t.flags |= ACCEPT;
            }
            table[state][nibble] = t;
            nibble += 1;
        }
        state += 1;
    }
    table
}

static HUFFMAN_NIBBLES: [[Nibble; 16]; 256] = huffman_nibbles();

fn huffman_decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
    // The shortest code is 5 bits.
    out.reserve(src.len() * 8 / 5 + 1);
    let mut state = 0usize;
    let mut accept = true;
    for &b in src {
        for nibble in [b >> 4, b & 0xf] {
            let t = HUFFMAN_NIBBLES[state][usize::from(nibble)];
            if t.flags & FAIL != 0 {
                return Err(HpackError::Huffman);
            }
            if t.flags & EMIT != 0 {
                out.push(t.sym);
            }
            state = usize::from(t.next);
            accept = t.flags & ACCEPT != 0;
        }
    }
    if accept {
        Ok(())
    } else {
        Err(HpackError::Huffman)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    // --- helpers -------------------------------------------------------------------------

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        put_frame_head(&mut f, payload.len(), kind, flags, &stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[derive(Debug, PartialEq)]
    struct Frame {
        kind: u8,
        flags: u8,
        stream: u32,
        payload: Vec<u8>,
    }

    fn parse_frames(mut b: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        while !b.is_empty() {
            let h = FrameHead::parse(&b[..FRAME_HEADER_LEN]);
            frames.push(Frame {
                kind: h.kind,
                flags: h.flags,
                stream: h.stream,
                payload: b[FRAME_HEADER_LEN..FRAME_HEADER_LEN + h.len].to_vec(),
            });
            b = &b[FRAME_HEADER_LEN + h.len..];
        }
        frames
    }

    type Fields = Vec<(String, String)>;

    fn fields(list: &[(&str, &str)]) -> Fields {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// Decodes a block as h2 will see it: only static indexes and literals not indexed are
    /// allowed (nothing may touch h2's dynamic table).
    fn decode_static(block: &[u8]) -> Fields {
        let mut out = Vec::new();
        let mut p = 0;
        let (mut name, mut value) = (Vec::new(), Vec::new());
        while p < block.len() {
            let b = block[p];
            if b & 0x80 != 0 {
                let (i, n) = integer(&block[p..], 7).unwrap();
                p += n;
                assert!((1..=61).contains(&i), "index {i} is not static");
                let (n, v) = STATIC_TABLE[i - 1];
                name = n.to_vec();
                value = v.to_vec();
            } else {
                assert_eq!(
                    b & 0xe0,
                    0,
                    "representation {b:#x} touches the dynamic table"
                );
                let (i, n) = integer(&block[p..], 4).unwrap();
                p += n;
                if i == 0 {
                    p += string(&block[p..], &mut name).unwrap();
                } else {
                    assert!(i <= 61, "name index {i} is not static");
                    name = STATIC_TABLE[i - 1].0.to_vec();
                }
                p += string(&block[p..], &mut value).unwrap();
            }
            out.push((
                String::from_utf8(name.clone()).unwrap(),
                String::from_utf8(value.clone()).unwrap(),
            ));
        }
        out
    }

    fn rewrite(hpack: &mut Hpack, block: &[u8]) -> Fields {
        let mut enc = Vec::new();
        hpack.rewrite(block, &mut enc).unwrap();
        decode_static(&enc)
    }

    /// A Huffman encoder (the tests' own, from the canonical codes).
    fn huffman_encode(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u64, 0u32);
        for &c in s {
            let len = u32::from(HUFFMAN_LEN[usize::from(c)]);
            acc = acc << len | u64::from(HUFFMAN_CODES[usize::from(c)]);
            bits += len;
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        if bits > 0 {
            out.push((acc << (8 - bits)) as u8 | (0xff >> bits));
        }
        out
    }

    /// A reader handing out pre-cut chunks, one per read, with a `Pending` before each when
    /// `stall` is set.
    struct Chunks {
        chunks: VecDeque<Vec<u8>>,
        stall: bool,
        stalled: bool,
    }

    impl Chunks {
        fn new(chunks: Vec<Vec<u8>>, stall: bool) -> Self {
            Chunks {
                chunks: chunks.into(),
                stall,
                stalled: false,
            }
        }

        fn bytewise(b: &[u8], stall: bool) -> Self {
            Chunks::new(b.iter().map(|&c| vec![c]).collect(), stall)
        }
    }

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.stall && !self.stalled {
                self.stalled = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.stalled = false;
            if let Some(mut c) = self.chunks.pop_front() {
                let n = c.len().min(buf.remaining());
                buf.put_slice(&c[..n]);
                if n < c.len() {
                    self.chunks.push_front(c.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    /// Everything the wrapper hands out, read `read_size` bytes at a time.
    async fn read_all(src: Chunks, read_size: usize) -> Vec<u8> {
        let mut fix = AuthorityFix::new(src);
        let mut out = Vec::new();
        let mut buf = vec![0; read_size];
        loop {
            let n = fix.read(&mut buf).await.unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    async fn through(input: &[u8]) -> Vec<u8> {
        read_all(Chunks::new(vec![input.to_vec()], false), 64 * 1024).await
    }

    fn connection(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut c = PREFACE.to_vec();
        c.extend_from_slice(&frame(0x4, 0, 0, &[])); // SETTINGS
        for f in frames {
            c.extend_from_slice(f);
        }
        c
    }

    /// The header block etcdctl 3.4 (grpc-go 1.33) sent for `endpoint status` against
    /// `http://127.0.0.1:23791`, captured off the wire.
    const ETCDCTL_STATUS: &str = "8386459760a924882d9dcb6571afa066a925a87510ac6e48d36a3f41\
        909d29aee30c044eae05c0b86e09975f0f5f8b1d75d0620d263d4c4d65647a8b9acac8b4c7602bb2ca\
        ecff40027465864d833505b11f40899acac8b24d494f6a7f867df7c4db56ff408d25062d495875996e\
        e5b1063d5f03332e34";

    fn etcdctl_fields(authority: &str) -> Fields {
        fields(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/etcdserverpb.Maintenance/Status"),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("user-agent", "grpc-go/1.33.3"),
            ("te", "trailers"),
            ("grpc-timeout", "999254u"),
            ("client-api-version", "3.4"),
        ])
    }

    /// The frames out of the wrapper, after the preface.
    fn frames_after_preface(out: &[u8]) -> Vec<Frame> {
        assert_eq!(&out[..PREFACE.len()], PREFACE);
        parse_frames(&out[PREFACE.len()..])
    }

    // --- HPACK ---------------------------------------------------------------------------

    #[test]
    fn huffman_codes_are_rfc_7541s() {
        // Spot checks against Appendix B: (symbol, code, length).
        for (sym, code, len) in [
            (0usize, 0x1ff8u32, 13u8),
            (b' ' as usize, 0x14, 6),
            (b'0' as usize, 0x0, 5),
            (b'a' as usize, 0x3, 5),
            (b'~' as usize, 0x1ffd, 13),
            (10, 0x3ffffffc, 30),
            (255, 0x3ffffee, 26),
            (EOS, 0x3fffffff, 30),
        ] {
            assert_eq!(
                (HUFFMAN_CODES[sym], HUFFMAN_LEN[sym]),
                (code, len),
                "symbol {sym}"
            );
        }
    }

    #[test]
    fn huffman_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        for s in [
            &all[..],
            b"",
            b"a",
            b"www.example.com",
            b"no-cache",
            &[255, 0, 10, 13, 22],
        ] {
            let mut out = Vec::new();
            huffman_decode(&huffman_encode(s), &mut out).unwrap();
            assert_eq!(out, s);
        }
    }

    #[test]
    fn huffman_rejects_bad_padding_and_eos() {
        let mut out = Vec::new();
        // 'a' is 00011: padded with zeros instead of ones.
        assert_eq!(
            huffman_decode(&[0b0001_1000], &mut out),
            Err(HpackError::Huffman)
        );
        // A whole byte of padding after 'a' (more than 7 bits).
        assert_eq!(
            huffman_decode(&[0b0001_1111, 0xff], &mut out),
            Err(HpackError::Huffman)
        );
        // EOS itself.
        assert_eq!(
            huffman_decode(&[0xff, 0xff, 0xff, 0xff], &mut out),
            Err(HpackError::Huffman)
        );
        // 'a' with 3 bits of padding is fine.
        out.clear();
        huffman_decode(&[0b0001_1111], &mut out).unwrap();
        assert_eq!(out, b"a");
    }

    #[test]
    fn integers_round_trip() {
        for n in [4u8, 5, 6, 7] {
            for v in [
                0usize,
                1,
                14,
                15,
                16,
                30,
                31,
                62,
                63,
                126,
                127,
                128,
                1337,
                1 << 20,
            ] {
                let mut b = Vec::new();
                put_integer(&mut b, v, n, 0);
                assert_eq!(
                    integer(&b, n).unwrap(),
                    (v, b.len()),
                    "{v} with {n}-bit prefix"
                );
            }
        }
        // RFC 7541 C.1.2: 1337 with a 5-bit prefix.
        assert_eq!(integer(&[31, 154, 10], 5).unwrap(), (1337, 3));
        assert_eq!(integer(&[31, 154], 5), Err(HpackError::Truncated));
        assert_eq!(
            integer(&[31, 0xff, 0xff, 0xff, 0xff, 0x7f], 5),
            Err(HpackError::Overflow)
        );
    }

    fn c3_requests() -> [Fields; 3] {
        [
            fields(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
            ]),
            fields(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache"),
            ]),
            fields(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ]),
        ]
    }

    #[test]
    fn rfc_7541_c3_requests_without_huffman() {
        let blocks = [
            "828684410f7777772e6578616d706c652e636f6d",
            "828684be58086e6f2d6361636865",
            "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
        ];
        let mut hpack = Hpack::new();
        for ((block, want), size) in blocks.iter().zip(c3_requests()).zip([57, 110, 164]) {
            assert_eq!(rewrite(&mut hpack, &hex(block)), want);
            assert_eq!(hpack.table.size, size);
        }
    }

    #[test]
    fn rfc_7541_c4_requests_with_huffman() {
        let blocks = [
            "828684418cf1e3c2e5f23a6ba0ab90f4ff",
            "828684be5886a8eb10649cbf",
            "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
        ];
        let mut hpack = Hpack::new();
        for ((block, want), size) in blocks.iter().zip(c3_requests()).zip([57, 110, 164]) {
            assert_eq!(rewrite(&mut hpack, &hex(block)), want);
            assert_eq!(hpack.table.size, size);
        }
        let newest = hpack.table.get(0).unwrap();
        assert_eq!(
            hpack.table.field(&newest),
            (&b"custom-key"[..], &b"custom-value"[..])
        );
    }

    #[test]
    fn dynamic_table_evicts_and_honours_size_updates() {
        let mut hpack = Hpack::new();
        // Size update to 100, then C.3.3's custom-key (54 bytes) twice: the first is evicted.
        let mut block = vec![0x3f, 0x45]; // 31 + 69 = 100
        block.extend(hex("400a637573746f6d2d6b65790c637573746f6d2d76616c7565"));
        block.extend(hex("400a637573746f6d2d6b65790c637573746f6d2d76616c7566"));
        let got = rewrite(&mut hpack, &block);
        assert_eq!(got[1], ("custom-key".into(), "custom-valuf".into()));
        assert_eq!((hpack.table.entries.len(), hpack.table.size), (1, 54));
        // Index 63 no longer exists.
        assert_eq!(
            hpack.rewrite(&[0xbf], &mut Vec::new()),
            Err(HpackError::Index)
        );
        // Beyond h2's SETTINGS_HEADER_TABLE_SIZE, or after a field: refused.
        assert_eq!(
            hpack.rewrite(&[0x3f, 0xe2, 0x1f], &mut Vec::new()),
            Err(HpackError::SizeUpdate)
        );
        assert_eq!(
            hpack.rewrite(&[0x82, 0x20], &mut Vec::new()),
            Err(HpackError::SizeUpdate)
        );
        // Size 0 empties the table.
        rewrite(&mut hpack, &[0x20, 0x82]);
        assert_eq!((hpack.table.entries.len(), hpack.table.size), (0, 0));
    }

    #[test]
    fn the_arena_is_reclaimed() {
        let mut hpack = Hpack::new();
        let mut block = Vec::new();
        for i in 0..1000u32 {
            block.clear();
            block.push(0x40);
            put_integer(&mut block, 5, 7, 0);
            block.extend_from_slice(b"x-key");
            let v = format!("value-{i:04}-{}", "v".repeat(200));
            put_integer(&mut block, v.len(), 7, 0);
            block.extend_from_slice(v.as_bytes());
            block.push(0xbe); // the entry just inserted
            let got = rewrite(&mut hpack, &block);
            assert_eq!(got[0], got[1]);
            assert_eq!(got[0].1, v);
        }
        assert!(hpack.table.data.len() <= 3 * HEADER_TABLE_SIZE);
        assert!(hpack.table.size <= HEADER_TABLE_SIZE);
    }

    #[test]
    fn never_indexed_fields_stay_never_indexed() {
        let mut hpack = Hpack::new();
        // authorization (23): never indexed, raw "secret".
        let block = hex("1f0806736563726574");
        let mut enc = Vec::new();
        hpack.rewrite(&block, &mut enc).unwrap();
        assert_eq!(enc, block);
        assert_eq!(decode_static(&enc), fields(&[("authorization", "secret")]));
    }

    // --- :authority ----------------------------------------------------------------------

    #[test]
    fn authority_repairs() {
        let cases: [(&str, Option<&str>); 9] = [
            ("127.0.0.1:2379", Some("127.0.0.1:2379")),
            ("http://127.0.0.1:2379", Some("127.0.0.1:2379")),
            ("https://example.com:2379/", Some("example.com:2379")),
            ("#initially=[http://a:1;http://b:2]", Some("a:1")),
            ("#initially=[https://[::1]:2379]", Some("[::1]:2379")),
            ("unix:///tmp/etcd.sock", None),
            ("#initially=[]", None),
            ("", None),
            ("a b", None),
        ];
        for (value, want) in cases {
            let mut enc = Vec::new();
            emit_authority(&mut Vec::new(), value.as_bytes(), false, &mut enc);
            let want: Fields = want
                .map(|w| (":authority".to_string(), w.to_string()))
                .into_iter()
                .collect();
            assert_eq!(decode_static(&enc), want, "{value}");
        }
    }

    #[test]
    fn an_empty_authority_is_dropped_wherever_it_comes_from() {
        let mut hpack = Hpack::new();
        // Static index 1, a literal inserted into the table, then that entry.
        let got = rewrite(&mut hpack, &[0x82, 0x81, 0x41, 0x00, 0xbe]);
        assert_eq!(got, fields(&[(":method", "GET")]));
        assert_eq!(hpack.table.entries.len(), 1);
    }

    #[test]
    fn etcdctl_block_gets_a_valid_authority() {
        let mut hpack = Hpack::new();
        assert_eq!(
            rewrite(&mut hpack, &hex(ETCDCTL_STATUS)),
            etcdctl_fields("127.0.0.1:23791")
        );
        // The next request refers to the dynamic table (:authority is entry 67 now).
        let got = rewrite(&mut hpack, &[0x83, 0x86, 0x80 | 68, 0x80 | 67, 0x80 | 66]);
        assert_eq!(got[3], (":authority".into(), "127.0.0.1:23791".into()));
        assert_eq!(got[4], ("content-type".into(), "application/grpc".into()));
    }

    // --- frames --------------------------------------------------------------------------

    #[tokio::test]
    async fn etcdctl_request_through_the_wrapper() {
        let data = frame(0x0, 0x1, 1, &[0, 0, 0, 0, 0]);
        let input = connection(&[frame(0x1, 0x4, 1, &hex(ETCDCTL_STATUS)), data.clone()]);
        let out = through(&input).await;
        let frames = frames_after_preface(&out);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], parse_frames(&frame(0x4, 0, 0, &[]))[0]);
        assert_eq!(
            (frames[1].kind, frames[1].flags, frames[1].stream),
            (0x1, 0x4, 1)
        );
        assert_eq!(
            decode_static(&frames[1].payload),
            etcdctl_fields("127.0.0.1:23791")
        );
        assert_eq!(frames[2], parse_frames(&data)[0]);
    }

    /// A block with `:authority: #initially=[...]` (raw strings), as etcd clientv3 3.5.0 sends.
    fn initially_block() -> Vec<u8> {
        let mut b = vec![0x83, 0x86];
        put_literal(&mut b, 4, b"", b"/etcdserverpb.KV/Range", false);
        put_literal(&mut b, 1, b"", b"#initially=[http://a:1;http://b:2]", false);
        put_literal(&mut b, 31, b"", b"application/grpc", false);
        b
    }

    #[tokio::test]
    async fn etcd_35_initially_authority() {
        let out = through(&connection(&[frame(0x1, 0x5, 3, &initially_block())])).await;
        let frames = frames_after_preface(&out);
        assert_eq!((frames[1].kind, frames[1].flags), (0x1, 0x5));
        assert_eq!(
            decode_static(&frames[1].payload),
            fields(&[
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/etcdserverpb.KV/Range"),
                (":authority", "a:1"),
                ("content-type", "application/grpc"),
            ])
        );
    }

    #[tokio::test]
    async fn continuations_are_joined_and_padding_dropped() {
        let block = hex(ETCDCTL_STATUS);
        let (a, rest) = block.split_at(10);
        let (b, c) = rest.split_at(50);
        // HEADERS: PADDED | PRIORITY | END_STREAM, 3 bytes of padding, then two CONTINUATIONs.
        let mut first = vec![3, 0x80, 0, 0, 1, 15];
        first.extend_from_slice(a);
        first.extend_from_slice(&[0, 0, 0]);
        let input = connection(&[
            frame(0x1, 0x8 | 0x20 | 0x1, 5, &first),
            frame(0x9, 0, 5, b),
            frame(0x9, 0x4, 5, c),
            frame(0x8, 0, 0, &[0, 0, 1, 0]), // WINDOW_UPDATE
        ]);
        let out = through(&input).await;
        let frames = frames_after_preface(&out);
        assert_eq!(frames.len(), 3);
        let h = &frames[1];
        assert_eq!((h.kind, h.flags, h.stream), (0x1, 0x20 | 0x4 | 0x1, 5));
        assert_eq!(&h.payload[..5], &[0x80, 0, 0, 1, 15]);
        assert_eq!(
            decode_static(&h.payload[5..]),
            etcdctl_fields("127.0.0.1:23791")
        );
        assert_eq!(frames[2].kind, 0x8);
    }

    #[tokio::test]
    async fn large_blocks_are_split_into_continuations() {
        let mut block = initially_block();
        let big = "x".repeat(40_000);
        put_literal(&mut block, 0, b"x-big", big.as_bytes(), false);
        // The client sent it in 16 KiB frames too.
        let parts: Vec<&[u8]> = block.chunks(MAX_FRAME_PAYLOAD).collect();
        let mut frames_in = vec![frame(0x1, 0x1, 7, parts[0])];
        for (i, p) in parts[1..].iter().enumerate() {
            let end = if i + 2 == parts.len() { 0x4 } else { 0 };
            frames_in.push(frame(0x9, end, 7, p));
        }
        let out = through(&connection(&frames_in)).await;
        let frames = frames_after_preface(&out);
        assert_eq!(frames.len(), 1 + 3);
        assert_eq!((frames[1].kind, frames[1].flags), (0x1, 0x1));
        assert_eq!((frames[2].kind, frames[2].flags), (0x9, 0));
        assert_eq!((frames[3].kind, frames[3].flags), (0x9, 0x4));
        let mut joined = Vec::new();
        for f in &frames[1..] {
            assert!(f.payload.len() <= MAX_FRAME_PAYLOAD);
            assert_eq!(f.stream, 7);
            joined.extend_from_slice(&f.payload);
        }
        let got = decode_static(&joined);
        assert_eq!(got[3], (":authority".into(), "a:1".into()));
        assert_eq!(got[5], ("x-big".into(), big));
    }

    fn mixed_connection() -> Vec<u8> {
        let mut long_data = vec![0u8; 5];
        long_data.extend((0..40_000u32).map(|i| i as u8));
        connection(&[
            frame(0x1, 0x4, 1, &hex(ETCDCTL_STATUS)),
            frame(0x0, 0x0, 1, &long_data),
            frame(0x0, 0x1, 1, &[]),
            frame(0x6, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]), // PING
            frame(0x1, 0x5, 3, &[0x83, 0x86, 0x80 | 68, 0x80 | 67]),
            frame(0x1, 0x5, 5, &initially_block()),
        ])
    }

    #[tokio::test]
    async fn split_reads_give_the_same_bytes() {
        let input = mixed_connection();
        let whole = through(&input).await;
        let frames = frames_after_preface(&whole);
        assert_eq!(frames.len(), 7);
        assert_eq!(
            decode_static(&frames[5].payload)[3],
            (":authority".into(), "127.0.0.1:23791".into())
        );
        // One byte per read of the socket, with a Pending before each.
        assert_eq!(read_all(Chunks::bytewise(&input, true), 4096).await, whole);
        // Odd chunk sizes, and a reader taking 1, 7 or 9 bytes at a time.
        let odd: Vec<Vec<u8>> = input.chunks(13).map(<[u8]>::to_vec).collect();
        for read_size in [1, 7, 9, 100_000] {
            assert_eq!(
                read_all(Chunks::new(odd.clone(), false), read_size).await,
                whole
            );
        }
    }

    #[tokio::test]
    async fn http1_passes_untouched() {
        let req = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:2379\r\n\r\n".to_vec();
        assert_eq!(through(&req).await, req);
        assert_eq!(read_all(Chunks::bytewise(&req, true), 3).await, req);
        // Close to the preface, but not it: headers-looking bytes after it are not touched.
        let mut near = b"PRI * HTTP/2.1\r\n\r\nSM\r\n\r\n".to_vec();
        near.extend(frame(0x1, 0x4, 1, &initially_block()));
        assert_eq!(through(&near).await, near);
        assert_eq!(through(b"").await, b"");
    }

    #[tokio::test]
    async fn an_undecodable_block_is_handed_on_as_it_came() {
        let bad = frame(0x1, 0x4, 1, &[0x80]); // index 0
        let after = frame(0x1, 0x4, 3, &initially_block());
        let input = connection(&[bad, after]);
        assert_eq!(through(&input).await, input);
        // A CONTINUATION for another stream: a protocol error h2 will report.
        let input = connection(&[
            frame(0x1, 0x0, 1, &initially_block()),
            frame(0x9, 0x4, 3, &[0x82]),
        ]);
        assert_eq!(through(&input).await, input);
        // Padding longer than the payload.
        let input = connection(&[frame(0x1, 0xc, 1, &[9, 0x82])]);
        assert_eq!(through(&input).await, input);
    }

    #[tokio::test]
    async fn writes_and_connect_info_pass_through() {
        let (client, server) = tokio::io::duplex(1024);
        let mut fix = AuthorityFix::new(server);
        fix.connect_info();
        fix.write_all(b"hello").await.unwrap();
        fix.flush().await.unwrap();
        let mut client = client;
        let mut got = [0; 5];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
    }

    /// `cargo test -p glassd --profile ci --lib api::authority::tests::overhead -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn overhead() {
        use std::time::Instant;
        const N: u32 = 200_000;
        let first = hex(ETCDCTL_STATUS);
        let mut enc = Vec::new();
        let t = Instant::now();
        for _ in 0..N {
            let mut hpack = Hpack::new();
            enc.clear();
            hpack.rewrite(&first, &mut enc).unwrap();
        }
        let cold = t.elapsed() / N;
        // A steady request: everything from the table, a new grpc-timeout inserted.
        let mut hpack = Hpack::new();
        hpack.rewrite(&first, &mut enc).unwrap();
        let mut steady = vec![
            0x83,
            0x86,
            0x80 | 68,
            0x80 | 67,
            0x80 | 66,
            0x80 | 65,
            0x80 | 64,
        ];
        steady.extend_from_slice(&[0x7f, 0x00, 7]);
        steady.extend_from_slice(b"999254u");
        steady.push(0x80 | 63);
        let t = Instant::now();
        for _ in 0..N {
            enc.clear();
            hpack.rewrite(&steady, &mut enc).unwrap();
        }
        let warm = t.elapsed() / N;
        println!(
            "etcdctl's first block (Huffman, 7 insertions): {cold:?}; a steady block (table \
             references): {warm:?}"
        );
        // Whole-wrapper throughput: a connection of requests with 1 KiB DATA frames.
        let mut frames = Vec::new();
        frames.push(frame(0x1, 0x4, 1, &first));
        for i in 0..10_000u32 {
            frames.push(frame(0x1, 0x4, 2 * i + 3, &steady));
            frames.push(frame(0x0, 0x1, 2 * i + 3, &[7; 1024]));
        }
        let input = connection(&frames);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let t = Instant::now();
        let out = rt.block_on(read_all(
            Chunks::new(input.chunks(64 * 1024).map(<[u8]>::to_vec).collect(), false),
            8192,
        ));
        let per = t.elapsed() / 10_000;
        assert!(out.len() > input.len());
        let t = Instant::now();
        let raw = rt.block_on(async {
            let mut r = Chunks::new(input.chunks(64 * 1024).map(<[u8]>::to_vec).collect(), false);
            let mut out = Vec::new();
            let mut buf = vec![0; 8192];
            loop {
                let n = r.read(&mut buf).await.unwrap();
                if n == 0 {
                    return out;
                }
                out.extend_from_slice(&buf[..n]);
            }
        });
        let per_raw = t.elapsed() / 10_000;
        assert_eq!(raw, input);
        println!(
            "per request (HEADERS + 1 KiB DATA) through the wrapper: {per:?}; without: {per_raw:?}"
        );
    }
}

//! The OTLP `ExportTraceServiceRequest` protobuf, written straight from the records: the same
//! message [`crate::export::export_request`] builds with prost's types (a test decodes one and
//! compares it with the other), without an allocation per span, attribute or id — at 100%
//! sampling the span building is most of the exporter's cost.
//!
//! ```text
//! ExportTraceServiceRequest  1: ResourceSpans
//! ResourceSpans              1: Resource {1: KeyValue*}   2: ScopeSpans
//! ScopeSpans                 1: InstrumentationScope {1: name, 2: version}   2: Span*
//! Span   1: trace_id (16 bytes)  2: span_id (8)  4: parent_span_id (8)  5: name  6: kind
//!        7: start (fixed64 ns)  8: end (fixed64 ns)  9: KeyValue*  13: Link*  15: Status
//!        16: flags (fixed32)
//! Link   1: trace_id (16 bytes)  2: span_id (8)  6: flags (fixed32)
//! KeyValue  1: key  2: AnyValue {1: string | 2: bool | 3: int64}
//! Status    2: message  3: code
//! ```

use crate::export::{
    layer_intervals, parents, root_attributes, span_ids, Attr, REMOTE_LINK_FLAGS, SCOPE,
};
use crate::slow::grpc_code_name;
use crate::tracer::FinishedRequest;

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

fn bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    tag(out, field, LEN);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn uint(out: &mut Vec<u8>, field: u64, v: u64) {
    tag(out, field, VARINT);
    varint(out, v);
}

fn fixed64(out: &mut Vec<u8>, field: u64, v: u64) {
    tag(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

fn fixed32(out: &mut Vec<u8>, field: u64, v: u32) {
    tag(out, field, FIXED32);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A nested message: its length goes before it, and is known only once it is written (one
/// byte is reserved, the usual case; a longer length moves the message up).
fn message(out: &mut Vec<u8>, field: u64, write: impl FnOnce(&mut Vec<u8>)) {
    tag(out, field, LEN);
    let at = out.len();
    out.push(0);
    write(out);
    let len = out.len() - at - 1;
    if len < 0x80 {
        out[at] = len as u8;
    } else {
        // A u64 varint is at most 10 bytes: written on the stack, no allocation per message.
        let (mut prefix, mut n, mut v) = ([0u8; 10], 0, len as u64);
        while v >= 0x80 {
            prefix[n] = (v as u8) | 0x80;
            v >>= 7;
            n += 1;
        }
        prefix[n] = v as u8;
        out[at] = prefix[0];
        out.splice(at + 1..at + 1, prefix[1..=n].iter().copied());
    }
}

fn attribute(out: &mut Vec<u8>, field: u64, key: &str, value: &Attr<'_>) {
    message(out, field, |o| {
        bytes(o, 1, key.as_bytes());
        message(o, 2, |o| match value {
            Attr::Str(s) => bytes(o, 1, s.as_bytes()),
            Attr::Bool(b) => uint(o, 2, u64::from(*b)),
            Attr::Int(i) => uint(o, 3, *i as u64),
        });
    });
}

/// The resource message's content (`Resource { attributes }`), written once per exporter.
pub fn resource(attrs: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in attrs {
        attribute(&mut out, 1, k, &Attr::Str(v));
    }
    out
}

/// The spans of one request, each as field 2 of `ScopeSpans`.
fn request_spans(out: &mut Vec<u8>, f: &FinishedRequest) {
    let trace_id = f.trace_id.to_be_bytes();
    let ids = span_ids(f);
    let at = |offset_ns: u64| f.unix_start_ns.saturating_add(offset_ns);
    message(out, 2, |o| {
        bytes(o, 1, &trace_id);
        bytes(o, 2, &f.span_id.to_be_bytes());
        if let Some(p) = f.parent_span_id {
            bytes(o, 4, &p.to_be_bytes());
        }
        bytes(o, 5, f.method.as_bytes());
        uint(o, 6, 2); // SERVER
        fixed64(o, 7, at(0));
        fixed64(o, 8, at(f.duration_ns));
        let key = (!f.key.is_empty()).then(|| f.key.escaped());
        for (k, v) in root_attributes(f, key.as_deref()) {
            attribute(o, 9, k, &v);
        }
        if let Some(l) = f.link {
            message(o, 13, |o| {
                bytes(o, 1, &l.trace_id.to_be_bytes());
                bytes(o, 2, &l.span_id.to_be_bytes());
                fixed32(o, 6, REMOTE_LINK_FLAGS);
            });
        }
        if f.code != 0 {
            message(o, 15, |o| {
                bytes(o, 2, grpc_code_name(f.code).as_bytes());
                uint(o, 3, 2); // ERROR
            });
        }
        fixed32(o, 16, 1);
    });
    let intervals = layer_intervals(f);
    let parents = parents(&intervals);
    for (i, l) in f.layers.iter().enumerate() {
        let parent = parents[i].map_or(f.span_id, &ids);
        let (s, e) = intervals[i];
        message(out, 2, |o| {
            bytes(o, 1, &trace_id);
            bytes(o, 2, &ids(i).to_be_bytes());
            bytes(o, 4, &parent.to_be_bytes());
            bytes(o, 5, l.name.as_bytes());
            uint(o, 6, 1); // INTERNAL
            fixed64(o, 7, at(s));
            fixed64(o, 8, at(e));
            for (k, v) in l.attrs.iter() {
                attribute(o, 9, k, &Attr::Int(v));
            }
            fixed32(o, 16, 1);
        });
    }
}

/// An `ExportTraceServiceRequest` holding `reqs`' spans, from `resource` (see [`resource`]).
pub fn encode(resource: &[u8], reqs: &[FinishedRequest], out: &mut Vec<u8>) {
    out.clear();
    message(out, 1, |o| {
        bytes(o, 1, resource);
        message(o, 2, |o| {
            message(o, 1, |o| {
                bytes(o, 1, SCOPE.as_bytes());
                bytes(o, 2, env!("CARGO_PKG_VERSION").as_bytes());
            });
            for f in reqs {
                request_spans(o, f);
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    use super::*;
    use crate::export::{export_request, Resource};
    use crate::names;
    use crate::request::{Attrs, KeyPrefix, Layer};

    fn finished(code: i32, parent: Option<u64>, layers: usize) -> FinishedRequest {
        let link = parent.is_none().then_some(crate::TraceContext {
            trace_id: 0xca11,
            span_id: 0x5eed,
            sampled: false,
        });
        let start = Instant::now();
        FinishedRequest {
            method: "etcdserverpb.KV/Txn",
            trace_id: 0xfeed_0000_0000_0000_0000_0000_0000_beef,
            span_id: 0x1234,
            parent_span_id: parent,
            link,
            sampled: false,
            slow: true,
            unix_start_ns: 1_700_000_000_000_000_000,
            start,
            duration_ns: 5_000_000,
            code,
            root: Attrs::from_slice(&[("etcd.revision", -3), ("etcd.ops", 300)]),
            key: KeyPrefix::new(&[b'k'; 200]),
            layers: (0..layers)
                .map(|i| Layer {
                    name: names::ALL[i % names::ALL.len()].name,
                    start: start + Duration::from_micros(i as u64 * 10),
                    duration_ns: 1000 * (layers - i) as u64,
                    attrs: Attrs::from_slice(&[("a", i as i64), ("b", -(i as i64))]),
                })
                .collect(),
        }
    }

    #[test]
    fn the_same_message_as_prost_builds() {
        let r = Resource {
            member_name: "m".repeat(300),
            member_id: 1,
            cluster_id: 2,
        };
        let reqs = vec![
            finished(0, None, 12),
            finished(14, Some(0x99), 0),
            finished(0, None, 40),
        ];
        let mut out = Vec::new();
        encode(&resource(&r.attribute_pairs()), &reqs, &mut out);
        let decoded = ExportTraceServiceRequest::decode(out.as_slice()).unwrap();
        assert_eq!(decoded, export_request(&r.attributes(), &reqs));
        // Many requests: lengths of several bytes at every level.
        let many: Vec<_> = (0..200).map(|_| finished(0, None, 12)).collect();
        encode(&resource(&r.attribute_pairs()), &many, &mut out);
        let decoded = ExportTraceServiceRequest::decode(out.as_slice()).unwrap();
        assert_eq!(decoded, export_request(&r.attributes(), &many));
    }
}

//! The seam to the other members: raft messages out. With one member there is nobody to send
//! to; the cluster issue adds a tonic implementation and an in-memory one that can drop, cut,
//! isolate and recover (rule 3). Messages in go through [`crate::etcdserver::RaftNode::step`].
//!
//! raft-rs messages are rust-protobuf 2 types; a network transport sends them as bytes
//! (`write_to_bytes`) inside Glass's own peer service.

use ::raft::eraftpb::Message;

/// Sends raft messages to peers. Called from the raft node's thread; must not block on the
/// network (queue, and report unreachable peers back through `RaftNode`).
pub trait Transport: Send + 'static {
    fn send(&mut self, msgs: Vec<Message>);
}

/// The transport of a single-member cluster: raft addresses no peer, so a message here is a
/// bug worth a log line, not a crash.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPeers;

impl Transport for NoPeers {
    fn send(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            tracing::warn!(to = m.to, kind = ?m.get_msg_type(), "raft message to a peer, but this member has none");
        }
    }
}

//! The gRPC API layer: etcd's v3 services (KV, Watch, Lease, Cluster, Maintenance, Auth, and
//! v3election/v3lock), wire-identical to etcd 3.4, and Glass's own services later.
//!
//! Contract: this is the only layer that speaks `tonic::Status`; the layers below return their
//! own error enums and `status.rs` maps them to etcd's codes and messages.
//!
//! # Layout
//! - `status` — etcd's gRPC errors (codes and messages, character for character) and the
//!   mapping of the lower layers' errors onto them.
//!
//! The services come with the single-member issue; the wire types are in [`crate::pb`].

pub mod status;

//! The etcd v3.4 wire types and gRPC services, generated from `server/proto/` by `build.rs`
//! (protox: no `protoc` needed). Every layer may use the message types (etcd's mvcc stores
//! `mvccpb.KeyValue`, its WAL `walpb.Record`); only `api` uses the services.
//!
//! One module per proto package, all siblings: prost refers across packages with
//! `super::<package>::Type` (e.g. `super::mvccpb::KeyValue` inside `etcdserverpb`), so the
//! modules sit side by side under this one.

pub mod wire;

pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}
pub mod authpb {
    tonic::include_proto!("authpb");
}
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}
pub mod leasepb {
    tonic::include_proto!("leasepb");
}
pub mod walpb {
    tonic::include_proto!("walpb");
}
pub mod snappb {
    tonic::include_proto!("snappb");
}

/// Glass's own API (`proto/glass/v1`): the diagnostics service.
pub mod glass {
    pub mod v1 {
        tonic::include_proto!("glass.v1");
    }
}

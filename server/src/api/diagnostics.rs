//! `glass.v1.Diagnostics` (Glass's own service, `proto/glass/v1/diagnostics.proto`): the
//! measurement snapshots stream, the slow-request ring, and the runtime flags.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::observe;
use super::status::not_built;
use crate::config::FlagInfo;
use crate::etcdserver::EtcdServer;
use crate::flags::RuntimeFlags;
use crate::pb::glass::v1::diagnostics_server::Diagnostics;
use crate::pb::glass::v1::{
    Flag, GetFlagsRequest, GetFlagsResponse, RecentSlowRequestsRequest, RecentSlowRequestsResponse,
    SetFlagRequest, SetFlagResponse, Snapshot, WatchRequest,
};

#[derive(Debug, Clone)]
pub struct DiagnosticsService {
    server: Arc<EtcdServer>,
    /// The settings in force; GetFlags and SetFlag delegate to it.
    flags: Arc<RuntimeFlags>,
}

impl DiagnosticsService {
    pub fn new(server: Arc<EtcdServer>, flags: Arc<RuntimeFlags>) -> Self {
        DiagnosticsService { server, flags }
    }
}

/// A registry entry on the wire (source: "default", "flag", "env", "file", "runtime",
/// "persisted").
fn flag_pb(f: FlagInfo) -> Flag {
    Flag {
        name: f.name.to_string(),
        value: f.value,
        default_value: f.default.to_string(),
        source: f.source.as_str().to_string(),
        runtime: f.runtime,
        description: f.description.to_string(),
        aliases: f.aliases.iter().map(|a| a.to_string()).collect(),
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<Snapshot, Status>> + Send>>;

#[tonic::async_trait]
impl Diagnostics for DiagnosticsService {
    type WatchStream = SnapshotStream;

    async fn watch(&self, _: Request<WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let _ = &self.server;
        Err(not_built("glass.v1.Diagnostics/Watch"))
    }

    async fn recent_slow_requests(
        &self,
        _: Request<RecentSlowRequestsRequest>,
    ) -> Result<Response<RecentSlowRequestsResponse>, Status> {
        Err(not_built("glass.v1.Diagnostics/RecentSlowRequests"))
    }

    async fn get_flags(
        &self,
        _: Request<GetFlagsRequest>,
    ) -> Result<Response<GetFlagsResponse>, Status> {
        observe(&self.server, "glass.v1.Diagnostics/GetFlags", async {
            Ok(GetFlagsResponse {
                flags: self.flags.get_all().into_iter().map(flag_pb).collect(),
            })
        })
        .await
    }

    async fn set_flag(
        &self,
        req: Request<SetFlagRequest>,
    ) -> Result<Response<SetFlagResponse>, Status> {
        let r = req.into_inner();
        let flags = self.flags.clone();
        observe(&self.server, "glass.v1.Diagnostics/SetFlag", async move {
            // Persisting fsyncs a file: off the async workers.
            let (flag, old_value) =
                tokio::task::spawn_blocking(move || flags.set(&r.name, &r.value, r.persist))
                    .await
                    .map_err(|e| Status::internal(e.to_string()))??;
            Ok(SetFlagResponse {
                flag: Some(flag_pb(flag)),
                old_value,
            })
        })
        .await
    }
}

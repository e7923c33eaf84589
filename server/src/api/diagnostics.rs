//! `glass.v1.Diagnostics` (Glass's own service, `proto/glass/v1/diagnostics.proto`): the
//! measurement snapshots stream, the slow-request ring, and the runtime flags.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::status::not_built;
use crate::etcdserver::EtcdServer;
use crate::pb::glass::v1::diagnostics_server::Diagnostics;
use crate::pb::glass::v1::{
    GetFlagsRequest, GetFlagsResponse, RecentSlowRequestsRequest, RecentSlowRequestsResponse,
    SetFlagRequest, SetFlagResponse, Snapshot, WatchRequest,
};

#[derive(Debug, Clone)]
pub struct DiagnosticsService {
    server: Arc<EtcdServer>,
}

impl DiagnosticsService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        DiagnosticsService { server }
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
        Err(not_built("glass.v1.Diagnostics/GetFlags"))
    }

    async fn set_flag(
        &self,
        _: Request<SetFlagRequest>,
    ) -> Result<Response<SetFlagResponse>, Status> {
        Err(not_built("glass.v1.Diagnostics/SetFlag"))
    }
}

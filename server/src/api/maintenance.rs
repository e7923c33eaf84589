//! `etcdserverpb.Maintenance` (etcd's `v3rpc/maintenance.go`): status, alarms, hashes,
//! defragment. Snapshot and MoveLeader are not built yet.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::status::not_built;
use super::{observe_traced, trace_parent, Headers};
use crate::etcdserver::EtcdServer;
use crate::pb::etcdserverpb::maintenance_server::Maintenance;
use crate::pb::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};

#[derive(Debug, Clone)]
pub struct MaintenanceService {
    server: Arc<EtcdServer>,
    headers: Headers,
}

impl MaintenanceService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        MaintenanceService {
            headers: Headers::new(server.clone()),
            server,
        }
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let parent = trace_parent(&req);
        let r = req.into_inner();
        // etcd answers Alarm and Defragment without a header.
        observe_traced(
            &self.server,
            "etcdserverpb.Maintenance/Alarm",
            parent,
            async { Ok(self.server.alarm(r).await?) },
        )
        .await
    }

    async fn status(
        &self,
        req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        observe_traced(
            &self.server,
            "etcdserverpb.Maintenance/Status",
            trace_parent(&req),
            async {
                let st = self.server.status();
                let mut resp = StatusResponse {
                    header: None,
                    version: st.version.to_string(),
                    db_size: st.db_size as i64,
                    leader: st.leader,
                    raft_index: st.raft_index,
                    raft_term: st.raft_term,
                    raft_applied_index: st.raft_applied_index,
                    errors: st.errors,
                    db_size_in_use: st.db_size_in_use as i64,
                    is_learner: false,
                };
                self.headers.fill(&mut resp.header);
                Ok(resp)
            },
        )
        .await
    }

    async fn defragment(
        &self,
        req: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        observe_traced(
            &self.server,
            "etcdserverpb.Maintenance/Defragment",
            trace_parent(&req),
            async {
                self.server.defragment().await?;
                Ok(DefragmentResponse { header: None })
            },
        )
        .await
    }

    async fn hash(&self, req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        observe_traced(
            &self.server,
            "etcdserverpb.Maintenance/Hash",
            trace_parent(&req),
            async {
                let hash = self.server.hash().await?;
                let mut resp = HashResponse { header: None, hash };
                self.headers.fill(&mut resp.header);
                Ok(resp)
            },
        )
        .await
    }

    async fn hash_kv(
        &self,
        req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let parent = trace_parent(&req);
        let r = req.into_inner();
        observe_traced(
            &self.server,
            "etcdserverpb.Maintenance/HashKV",
            parent,
            async {
                let h = self.server.hash_kv(r.revision).await?;
                let mut resp = HashKvResponse {
                    header: None,
                    hash: h.hash,
                    compact_revision: h.compact_revision,
                };
                self.headers.fill(&mut resp.header);
                if let Some(hd) = resp.header.as_mut() {
                    hd.revision = h.revision;
                }
                Ok(resp)
            },
        )
        .await
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(not_built("etcdserverpb.Maintenance/Snapshot"))
    }

    async fn move_leader(
        &self,
        _: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(not_built("etcdserverpb.Maintenance/MoveLeader"))
    }
}

//! `etcdserverpb.Cluster` (etcd's `v3rpc/member.go`): the member list. Membership changes come
//! with clustering and answer `UNIMPLEMENTED` until then.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::status::not_built;
use super::{observe_traced, trace_parent, Headers};
use crate::etcdserver::EtcdServer;
use crate::pb::etcdserverpb::cluster_server::Cluster;
use crate::pb::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};

#[derive(Debug, Clone)]
pub struct ClusterService {
    server: Arc<EtcdServer>,
    headers: Headers,
}

impl ClusterService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        ClusterService {
            headers: Headers::new(server.clone()),
            server,
        }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        _: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        Err(not_built("etcdserverpb.Cluster/MemberAdd"))
    }

    async fn member_remove(
        &self,
        _: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(not_built("etcdserverpb.Cluster/MemberRemove"))
    }

    async fn member_update(
        &self,
        _: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(not_built("etcdserverpb.Cluster/MemberUpdate"))
    }

    async fn member_list(
        &self,
        req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        observe_traced(
            &self.server,
            "etcdserverpb.Cluster/MemberList",
            trace_parent(&req),
            async {
                let mut resp = MemberListResponse {
                    header: None,
                    members: self
                        .server
                        .members()
                        .iter()
                        .map(|m| Member {
                            id: m.id,
                            name: m.name.clone(),
                            peer_ur_ls: m.peer_urls.clone(),
                            client_ur_ls: m.client_urls.clone(),
                            is_learner: m.is_learner,
                        })
                        .collect(),
                };
                self.headers.fill_ids(&mut resp.header);
                Ok(resp)
            },
        )
        .await
    }

    async fn member_promote(
        &self,
        _: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(not_built("etcdserverpb.Cluster/MemberPromote"))
    }
}

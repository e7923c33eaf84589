//! The services registered but not built yet — Watch, Lease, Auth, and v3lock / v3election.
//! Every RPC answers `UNIMPLEMENTED` naming itself, never a fake success, so clients fail
//! clearly (etcdctl prints the message) instead of hanging or misbehaving.

use std::future::Future;
use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::status::not_built;
use crate::pb::etcdserverpb::auth_server::Auth;
use crate::pb::etcdserverpb::lease_server::Lease;
use crate::pb::etcdserverpb::watch_server::Watch;
use crate::pb::etcdserverpb::*;
use crate::pb::v3electionpb::election_server::Election;
use crate::pb::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use crate::pb::v3lockpb::lock_server::Lock;
use crate::pb::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};

/// Stands in for every service not built yet.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotBuilt;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Unary RPCs answering `UNIMPLEMENTED`, written as `async_trait` expands an `async fn` (the
/// attribute runs before this macro, so it cannot expand them itself).
macro_rules! unary {
    ($($fn:ident($req:ty) -> $resp:ty = $method:literal;)*) => {
        $(
            fn $fn<'life0, 'async_trait>(
                &'life0 self,
                _: Request<$req>,
            ) -> Pin<Box<dyn Future<Output = Result<Response<$resp>, Status>> + Send + 'async_trait>>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(std::future::ready(Err(not_built($method))))
            }
        )*
    };
}

#[tonic::async_trait]
impl Watch for NotBuilt {
    type WatchStream = BoxStream<WatchResponse>;

    async fn watch(
        &self,
        _: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(not_built("etcdserverpb.Watch/Watch"))
    }
}

#[tonic::async_trait]
impl Lease for NotBuilt {
    unary! {
        lease_grant(LeaseGrantRequest) -> LeaseGrantResponse = "etcdserverpb.Lease/LeaseGrant";
        lease_revoke(LeaseRevokeRequest) -> LeaseRevokeResponse = "etcdserverpb.Lease/LeaseRevoke";
        lease_time_to_live(LeaseTimeToLiveRequest) -> LeaseTimeToLiveResponse =
            "etcdserverpb.Lease/LeaseTimeToLive";
        lease_leases(LeaseLeasesRequest) -> LeaseLeasesResponse = "etcdserverpb.Lease/LeaseLeases";
    }

    type LeaseKeepAliveStream = BoxStream<LeaseKeepAliveResponse>;

    async fn lease_keep_alive(
        &self,
        _: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        Err(not_built("etcdserverpb.Lease/LeaseKeepAlive"))
    }
}

#[tonic::async_trait]
impl Auth for NotBuilt {
    unary! {
        auth_enable(AuthEnableRequest) -> AuthEnableResponse = "etcdserverpb.Auth/AuthEnable";
        auth_disable(AuthDisableRequest) -> AuthDisableResponse = "etcdserverpb.Auth/AuthDisable";
        authenticate(AuthenticateRequest) -> AuthenticateResponse = "etcdserverpb.Auth/Authenticate";
        user_add(AuthUserAddRequest) -> AuthUserAddResponse = "etcdserverpb.Auth/UserAdd";
        user_get(AuthUserGetRequest) -> AuthUserGetResponse = "etcdserverpb.Auth/UserGet";
        user_list(AuthUserListRequest) -> AuthUserListResponse = "etcdserverpb.Auth/UserList";
        user_delete(AuthUserDeleteRequest) -> AuthUserDeleteResponse = "etcdserverpb.Auth/UserDelete";
        user_change_password(AuthUserChangePasswordRequest) -> AuthUserChangePasswordResponse =
            "etcdserverpb.Auth/UserChangePassword";
        user_grant_role(AuthUserGrantRoleRequest) -> AuthUserGrantRoleResponse =
            "etcdserverpb.Auth/UserGrantRole";
        user_revoke_role(AuthUserRevokeRoleRequest) -> AuthUserRevokeRoleResponse =
            "etcdserverpb.Auth/UserRevokeRole";
        role_add(AuthRoleAddRequest) -> AuthRoleAddResponse = "etcdserverpb.Auth/RoleAdd";
        role_get(AuthRoleGetRequest) -> AuthRoleGetResponse = "etcdserverpb.Auth/RoleGet";
        role_list(AuthRoleListRequest) -> AuthRoleListResponse = "etcdserverpb.Auth/RoleList";
        role_delete(AuthRoleDeleteRequest) -> AuthRoleDeleteResponse = "etcdserverpb.Auth/RoleDelete";
        role_grant_permission(AuthRoleGrantPermissionRequest) -> AuthRoleGrantPermissionResponse =
            "etcdserverpb.Auth/RoleGrantPermission";
        role_revoke_permission(AuthRoleRevokePermissionRequest) -> AuthRoleRevokePermissionResponse =
            "etcdserverpb.Auth/RoleRevokePermission";
    }
}

#[tonic::async_trait]
impl Lock for NotBuilt {
    unary! {
        lock(LockRequest) -> LockResponse = "v3lockpb.Lock/Lock";
        unlock(UnlockRequest) -> UnlockResponse = "v3lockpb.Lock/Unlock";
    }
}

#[tonic::async_trait]
impl Election for NotBuilt {
    unary! {
        campaign(CampaignRequest) -> CampaignResponse = "v3electionpb.Election/Campaign";
        proclaim(ProclaimRequest) -> ProclaimResponse = "v3electionpb.Election/Proclaim";
        leader(LeaderRequest) -> LeaderResponse = "v3electionpb.Election/Leader";
        resign(ResignRequest) -> ResignResponse = "v3electionpb.Election/Resign";
    }

    type ObserveStream = BoxStream<LeaderResponse>;

    async fn observe(
        &self,
        _: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        Err(not_built("v3electionpb.Election/Observe"))
    }
}

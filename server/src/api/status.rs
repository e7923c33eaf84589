//! etcd's gRPC errors (`rpctypes`), and the mapping of every lower layer's error onto them.
//!
//! The only place in Glass that builds a `tonic::Status`. Codes and messages are etcd 3.4's,
//! character for character: clients (etcdctl, clientv3, the etcd-client crate) match on the
//! message text to recognise an error, so a different word is a different error to them. An error
//! etcd has no name for goes out as `Unknown` with its own text, as etcd's `toGRPCError` does.

use tonic::{Code, Status};

use crate::etcdserver::ServerError;
use crate::flags::FlagError;
use crate::storage::mvcc::MvccError;

macro_rules! etcd_errors {
    ($($(#[$doc:meta])* $variant:ident => $code:ident, $msg:literal;)*) => {
        /// etcd's server-side gRPC errors (`etcdserver/api/v3rpc/rpctypes`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum EtcdError {
            $($(#[$doc])* $variant,)*
        }

        impl EtcdError {
            /// Every error, in etcd's order.
            pub const ALL: &'static [EtcdError] = &[$(EtcdError::$variant,)*];

            /// The gRPC status code etcd sends.
            pub fn code(self) -> Code {
                match self {
                    $(EtcdError::$variant => Code::$code,)*
                }
            }

            /// The message etcd sends.
            pub fn message(self) -> &'static str {
                match self {
                    $(EtcdError::$variant => $msg,)*
                }
            }
        }
    };
}

etcd_errors! {
    EmptyKey => InvalidArgument, "etcdserver: key is not provided";
    KeyNotFound => InvalidArgument, "etcdserver: key not found";
    ValueProvided => InvalidArgument, "etcdserver: value is provided";
    LeaseProvided => InvalidArgument, "etcdserver: lease is provided";
    TooManyOps => InvalidArgument, "etcdserver: too many operations in txn request";
    DuplicateKey => InvalidArgument, "etcdserver: duplicate key given in txn request";
    Compacted => OutOfRange, "etcdserver: mvcc: required revision has been compacted";
    FutureRev => OutOfRange, "etcdserver: mvcc: required revision is a future revision";
    NoSpace => ResourceExhausted, "etcdserver: mvcc: database space exceeded";
    LeaseNotFound => NotFound, "etcdserver: requested lease not found";
    LeaseExist => FailedPrecondition, "etcdserver: lease already exists";
    LeaseTtlTooLarge => OutOfRange, "etcdserver: too large lease TTL";
    MemberExist => FailedPrecondition, "etcdserver: member ID already exist";
    PeerUrlExist => FailedPrecondition, "etcdserver: Peer URLs already exists";
    MemberNotEnoughStarted => FailedPrecondition,
        "etcdserver: re-configuration failed due to not enough started members";
    MemberBadUrls => InvalidArgument, "etcdserver: given member URLs are invalid";
    MemberNotFound => NotFound, "etcdserver: member not found";
    MemberNotLearner => FailedPrecondition, "etcdserver: can only promote a learner member";
    LearnerNotReady => FailedPrecondition,
        "etcdserver: can only promote a learner member which is in sync with leader";
    TooManyLearners => FailedPrecondition, "etcdserver: too many learner members in cluster";
    RequestTooLarge => InvalidArgument, "etcdserver: request is too large";
    TooManyRequests => ResourceExhausted, "etcdserver: too many requests";
    RootUserNotExist => FailedPrecondition, "etcdserver: root user does not exist";
    RootRoleNotExist => FailedPrecondition, "etcdserver: root user does not have root role";
    UserAlreadyExist => FailedPrecondition, "etcdserver: user name already exists";
    UserEmpty => InvalidArgument, "etcdserver: user name is empty";
    UserNotFound => FailedPrecondition, "etcdserver: user name not found";
    RoleAlreadyExist => FailedPrecondition, "etcdserver: role name already exists";
    RoleNotFound => FailedPrecondition, "etcdserver: role name not found";
    RoleEmpty => InvalidArgument, "etcdserver: role name is empty";
    AuthFailed => InvalidArgument, "etcdserver: authentication failed, invalid user ID or password";
    PermissionDenied => PermissionDenied, "etcdserver: permission denied";
    RoleNotGranted => FailedPrecondition, "etcdserver: role is not granted to the user";
    PermissionNotGranted => FailedPrecondition, "etcdserver: permission is not granted to the role";
    AuthNotEnabled => FailedPrecondition, "etcdserver: authentication is not enabled";
    InvalidAuthToken => Unauthenticated, "etcdserver: invalid auth token";
    InvalidAuthMgmt => InvalidArgument, "etcdserver: invalid auth management";
    NoLeader => Unavailable, "etcdserver: no leader";
    NotLeader => FailedPrecondition, "etcdserver: not leader";
    LeaderChanged => Unavailable, "etcdserver: leader changed";
    NotCapable => Unavailable, "etcdserver: not capable";
    Stopped => Unavailable, "etcdserver: server stopped";
    Timeout => Unavailable, "etcdserver: request timed out";
    TimeoutDueToLeaderFail => Unavailable,
        "etcdserver: request timed out, possibly due to previous leader failure";
    TimeoutDueToConnectionLost => Unavailable,
        "etcdserver: request timed out, possibly due to connection lost";
    Unhealthy => Unavailable, "etcdserver: unhealthy cluster";
    Corrupt => DataLoss, "etcdserver: corrupt cluster";
    NotSupportedForLearner => Unavailable, "etcdserver: rpc not supported for learner";
    BadLeaderTransferee => FailedPrecondition, "etcdserver: bad leader transferee";
}

impl std::fmt::Display for EtcdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl From<EtcdError> for Status {
    fn from(e: EtcdError) -> Status {
        Status::new(e.code(), e.message())
    }
}

/// An error etcd has no name for: `Unknown` with the error's own text.
fn unknown(e: &dyn std::error::Error) -> Status {
    Status::new(Code::Unknown, e.to_string())
}

/// The MVCC layer's errors as etcd sends them.
pub fn from_mvcc(e: &MvccError) -> Status {
    match e {
        MvccError::Compacted => EtcdError::Compacted.into(),
        MvccError::FutureRev => EtcdError::FutureRev.into(),
        MvccError::Closed => EtcdError::Stopped.into(),
        other => unknown(other),
    }
}

/// The etcdserver layer's errors as etcd sends them.
pub fn from_server(e: &ServerError) -> Status {
    match e {
        ServerError::Timeout => EtcdError::Timeout.into(),
        ServerError::Stopped => EtcdError::Stopped.into(),
        ServerError::RequestTooLarge => EtcdError::RequestTooLarge.into(),
        ServerError::KeyNotFound => EtcdError::KeyNotFound.into(),
        ServerError::LeaseNotFound => EtcdError::LeaseNotFound.into(),
        ServerError::NoSpace => EtcdError::NoSpace.into(),
        ServerError::NoLeader => EtcdError::NoLeader.into(),
        ServerError::TooManyRequests => EtcdError::TooManyRequests.into(),
        ServerError::Mvcc(m) => from_mvcc(m),
        ServerError::Unimplemented(_) => Status::new(Code::Unimplemented, e.to_string()),
        other => unknown(other),
    }
}

impl From<ServerError> for Status {
    fn from(e: ServerError) -> Status {
        from_server(&e)
    }
}

impl From<MvccError> for Status {
    fn from(e: MvccError) -> Status {
        from_mvcc(&e)
    }
}

/// A runtime flag change refused (`glass.v1.Diagnostics/SetFlag`): `NOT_FOUND` for an unknown
/// flag, `FAILED_PRECONDITION` for one that cannot change while running, `INVALID_ARGUMENT` for
/// a bad value, `INTERNAL` when the change could not be persisted or applied.
pub fn from_flags(e: &FlagError) -> Status {
    let code = match e {
        FlagError::NotFound { .. } => Code::NotFound,
        FlagError::NotRuntime { .. } => Code::FailedPrecondition,
        FlagError::InvalidValue(_) => Code::InvalidArgument,
        _ => Code::Internal,
    };
    Status::new(code, e.to_string())
}

impl From<FlagError> for Status {
    fn from(e: FlagError) -> Status {
        from_flags(&e)
    }
}

/// An RPC Glass does not serve yet: `UNIMPLEMENTED`, naming it.
pub fn not_built(method: &str) -> Status {
    Status::new(
        Code::Unimplemented,
        format!("glass: {method} is not implemented yet"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages_are_etcds() {
        for (e, code, msg) in [
            (
                EtcdError::EmptyKey,
                Code::InvalidArgument,
                "etcdserver: key is not provided",
            ),
            (
                EtcdError::RequestTooLarge,
                Code::InvalidArgument,
                "etcdserver: request is too large",
            ),
            (
                EtcdError::NoSpace,
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
            ),
            (
                EtcdError::LeaseNotFound,
                Code::NotFound,
                "etcdserver: requested lease not found",
            ),
            (
                EtcdError::Timeout,
                Code::Unavailable,
                "etcdserver: request timed out",
            ),
            (
                EtcdError::Corrupt,
                Code::DataLoss,
                "etcdserver: corrupt cluster",
            ),
        ] {
            let s = Status::from(e);
            assert_eq!((s.code(), s.message()), (code, msg));
        }
        // Every message is etcd's and distinct: clients tell errors apart by their text.
        let mut msgs: Vec<_> = EtcdError::ALL.iter().map(|e| e.message()).collect();
        assert!(msgs.iter().all(|m| m.starts_with("etcdserver: ")));
        msgs.sort_unstable();
        msgs.dedup();
        assert_eq!(msgs.len(), EtcdError::ALL.len());
        assert_eq!(EtcdError::ALL.len(), 49);
    }

    #[test]
    fn layer_errors_map_to_etcds() {
        let s = from_mvcc(&MvccError::Compacted);
        assert_eq!(s.code(), Code::OutOfRange);
        assert_eq!(
            s.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        let s = from_mvcc(&MvccError::FutureRev);
        assert_eq!(
            s.message(),
            "etcdserver: mvcc: required revision is a future revision"
        );
        let s = from_server(&ServerError::Timeout);
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unavailable, "etcdserver: request timed out")
        );
        let s = from_server(&ServerError::ProposalDropped);
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unknown, "raft proposal dropped")
        );
    }
}

//! The alarm store (etcd's `v3alarm.AlarmStore`): raised alarms per member, kept in the
//! backend's `alarm` bucket so that a NOSPACE alarm survives a restart.
//!
//! ```text
//! bucket "alarm"
//!   key    etcdserverpb.AlarmMember, protobuf: memberID (field 1, varint), alarm (field 2, varint)
//!   value  empty
//! ```

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use prost::Message;

use super::error::ServerError;
use crate::pb::etcdserverpb::{AlarmMember, AlarmType};
use crate::storage::backend::Backend;

/// etcd's alarm bucket.
pub const ALARM_BUCKET: &[u8] = b"alarm";

/// Raised alarms; see the module documentation.
#[derive(Debug)]
pub struct Alarms {
    backend: Arc<Backend>,
    /// (alarm type, member id).
    set: Mutex<BTreeSet<(i32, u64)>>,
}

impl Alarms {
    /// Loads the raised alarms from the backend (creating the bucket).
    pub fn open(backend: Arc<Backend>) -> Result<Alarms, ServerError> {
        backend.batch_tx().create_bucket(ALARM_BUCKET)?;
        let mut set = BTreeSet::new();
        let mut bad = None;
        backend
            .read_tx()
            .for_each(ALARM_BUCKET, |k, _| match AlarmMember::decode(k) {
                Ok(m) => {
                    set.insert((m.alarm, m.member_id));
                }
                Err(e) => bad = Some(e.to_string()),
            })?;
        if let Some(reason) = bad {
            return Err(ServerError::Internal(format!(
                "the alarm bucket holds a bad key: {reason}"
            )));
        }
        Ok(Alarms {
            backend,
            set: Mutex::new(set),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeSet<(i32, u64)>> {
        // Nothing panics under this lock.
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Raises `alarm` for `member` (again: no change).
    pub fn activate(&self, member: u64, alarm: i32) -> Result<AlarmMember, ServerError> {
        let m = AlarmMember {
            member_id: member,
            alarm,
        };
        if self.lock().insert((alarm, member)) {
            self.backend
                .batch_tx()
                .put(ALARM_BUCKET, &m.encode_to_vec(), &[])?;
        }
        Ok(m)
    }

    /// Disarms `alarm` for `member`; `None` when it was not raised.
    pub fn deactivate(&self, member: u64, alarm: i32) -> Result<Option<AlarmMember>, ServerError> {
        let m = AlarmMember {
            member_id: member,
            alarm,
        };
        if !self.lock().remove(&(alarm, member)) {
            return Ok(None);
        }
        self.backend
            .batch_tx()
            .delete(ALARM_BUCKET, &m.encode_to_vec())?;
        Ok(Some(m))
    }

    /// The raised alarms of type `alarm`; every alarm for `NONE`.
    pub fn get(&self, alarm: i32) -> Vec<AlarmMember> {
        self.lock()
            .iter()
            .filter(|(a, _)| alarm == AlarmType::None as i32 || *a == alarm)
            .map(|&(a, m)| AlarmMember {
                member_id: m,
                alarm: a,
            })
            .collect()
    }

    pub fn has(&self, alarm: AlarmType) -> bool {
        self.lock().iter().any(|(a, _)| *a == alarm as i32)
    }
}

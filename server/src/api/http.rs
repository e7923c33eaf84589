//! The HTTP endpoints etcd serves beside gRPC (`etcdhttp`): `/health` (etcd's JSON and status
//! codes: alarms, no leader, or a failing linearizable read make it `"false"` with 503; `?exclude=
//! NOSPACE` ignores an alarm), `/version`, and `/metrics` (Prometheus text).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tracing::warn;

use crate::etcdserver::{EtcdServer, CLUSTER_VERSION, ETCD_VERSION};
use crate::pb::etcdserverpb::{AlarmType, RangeRequest};

pub fn routes(server: Arc<EtcdServer>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .with_state(server)
}

async fn version() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("{{\"etcdserver\":\"{ETCD_VERSION}\",\"etcdcluster\":\"{CLUSTER_VERSION}\"}}"),
    )
}

async fn metrics(State(server): State<Arc<EtcdServer>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, telemetry::prometheus::CONTENT_TYPE)],
        telemetry::prometheus::render(server.metrics()),
    )
}

/// etcd's `checkHealth`.
async fn health(
    State(server): State<Arc<EtcdServer>>,
    RawQuery(query): RawQuery,
) -> impl IntoResponse {
    let excluded: Vec<String> = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.strip_prefix("exclude="))
        .map(str::to_string)
        .collect();
    let mut healthy = true;
    for a in server.alarms() {
        let name = AlarmType::try_from(a.alarm).map_or("UNKNOWN", |t| t.as_str_name());
        if !excluded.iter().any(|e| e == name) {
            warn!(alarm = name, "/health error: an alarm is raised");
            healthy = false;
            break;
        }
    }
    if healthy && server.raft().status().leader == 0 {
        warn!("/health error: no leader");
        healthy = false;
    }
    if healthy {
        let read = server.range(RangeRequest {
            key: b"health".to_vec(),
            ..Default::default()
        });
        match tokio::time::timeout(Duration::from_secs(1), read).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "/health error: a linearizable read failed");
                healthy = false;
            }
            Err(_) => {
                warn!("/health error: a linearizable read timed out");
                healthy = false;
            }
        }
    }
    let body = format!("{{\"health\":\"{healthy}\"}}");
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body)
}

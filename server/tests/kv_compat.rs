//! Wire compatibility of the generated KV service with clients written by
//! others: the `etcd-client` crate, and etcd 3.4's own `etcdctl` when it is on
//! PATH. A tonic server answers Range and Put with fixed responses and records
//! the requests it received; every field must survive both directions.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use glassd::pb::etcdserverpb::kv_server::{Kv, KvServer};
use glassd::pb::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
};
use glassd::pb::mvccpb::KeyValue;
use tonic::{Request, Response, Status};

const CLUSTER_ID: u64 = 0x1122_3344_5566_7788;
const MEMBER_ID: u64 = 0x0102_0304_0506_0708;

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        cluster_id: CLUSTER_ID,
        member_id: MEMBER_ID,
        revision,
        raft_term: 7,
    })
}

fn kv(key: &str, value: &str, n: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        create_revision: 10 + n,
        mod_revision: 20 + n,
        version: 3 + n,
        value: value.into(),
        lease: 0x7000 + n,
    }
}

#[derive(Default, Clone)]
struct FixedKv {
    ranges: Arc<Mutex<Vec<RangeRequest>>>,
    puts: Arc<Mutex<Vec<PutRequest>>>,
}

#[tonic::async_trait]
impl Kv for FixedKv {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        self.ranges.lock().expect("lock").push(req.into_inner());
        Ok(Response::new(RangeResponse {
            header: header(42),
            kvs: vec![kv("foo", "bar", 0), kv("foo2", "", 1)],
            more: true,
            count: 5,
        }))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        self.puts.lock().expect("lock").push(req.into_inner());
        Ok(Response::new(PutResponse {
            header: header(43),
            prev_kv: Some(kv("k", "old", 2)),
        }))
    }

    async fn delete_range(
        &self,
        _: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        Err(Status::unimplemented("fixed server"))
    }

    async fn txn(&self, _: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        Err(Status::unimplemented("fixed server"))
    }

    async fn compact(
        &self,
        _: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        Err(Status::unimplemented("fixed server"))
    }
}

/// Serves `svc` on 127.0.0.1:0; the server stops when the returned sender drops.
async fn serve(svc: FixedKv) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(KvServer::new(svc))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = rx.await;
                },
            )
            .await
            .expect("serve");
    });
    (addr, tx)
}

#[tokio::test]
async fn etcd_client_get_and_put_round_trip_every_field() {
    let svc = FixedKv::default();
    let (addr, _stop) = serve(svc.clone()).await;
    let mut client = etcd_client::Client::connect([addr.to_string()], None)
        .await
        .expect("connect");

    // Range: request fields reach the server, response fields reach the client.
    let opts = etcd_client::GetOptions::new()
        .with_prefix()
        .with_limit(3)
        .with_revision(9)
        .with_sort(
            etcd_client::SortTarget::Mod,
            etcd_client::SortOrder::Descend,
        )
        .with_serializable()
        .with_keys_only()
        .with_min_mod_revision(1)
        .with_max_mod_revision(2)
        .with_min_create_revision(3)
        .with_max_create_revision(4);
    let resp = client.get("foo", Some(opts)).await.expect("get");
    let h = resp.header().expect("header");
    assert_eq!(
        (h.cluster_id(), h.member_id(), h.revision(), h.raft_term()),
        (CLUSTER_ID, MEMBER_ID, 42, 7)
    );
    assert!(resp.more());
    assert_eq!(resp.count(), 5);
    let kvs = resp.kvs();
    assert_eq!(kvs.len(), 2);
    for (i, (got, key, value)) in [(&kvs[0], "foo", "bar"), (&kvs[1], "foo2", "")]
        .into_iter()
        .enumerate()
    {
        let n = i as i64;
        assert_eq!(got.key(), key.as_bytes());
        assert_eq!(got.value(), value.as_bytes());
        assert_eq!(got.create_revision(), 10 + n);
        assert_eq!(got.mod_revision(), 20 + n);
        assert_eq!(got.version(), 3 + n);
        assert_eq!(got.lease(), 0x7000 + n);
    }
    let seen = svc.ranges.lock().expect("lock").pop().expect("one range");
    assert_eq!(
        seen,
        RangeRequest {
            key: b"foo".to_vec(),
            range_end: b"fop".to_vec(),
            limit: 3,
            revision: 9,
            sort_order: 2,  // DESCEND
            sort_target: 3, // MOD
            serializable: true,
            keys_only: true,
            count_only: false,
            min_mod_revision: 1,
            max_mod_revision: 2,
            min_create_revision: 3,
            max_create_revision: 4,
        }
    );

    // Put.
    let opts = etcd_client::PutOptions::new()
        .with_lease(0x55)
        .with_prev_key()
        .with_ignore_lease();
    let resp = client.put("k", "v", Some(opts)).await.expect("put");
    let h = resp.header().expect("header");
    assert_eq!(
        (h.cluster_id(), h.member_id(), h.revision(), h.raft_term()),
        (CLUSTER_ID, MEMBER_ID, 43, 7)
    );
    let prev = resp.prev_key().expect("prev_kv");
    assert_eq!(
        (
            prev.key(),
            prev.value(),
            prev.create_revision(),
            prev.mod_revision()
        ),
        (&b"k"[..], &b"old"[..], 12, 22)
    );
    assert_eq!((prev.version(), prev.lease()), (5, 0x7002));
    let seen = svc.puts.lock().expect("lock").pop().expect("one put");
    assert_eq!(
        seen,
        PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            lease: 0x55,
            prev_kv: true,
            ignore_value: false,
            ignore_lease: true,
        }
    );
}

/// etcd 3.4's etcdctl (Debian package `etcd-client`) against the generated
/// server; skipped when etcdctl is not installed.
#[tokio::test]
async fn etcdctl_get_json() {
    if std::process::Command::new("etcdctl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("etcdctl not on PATH: skipped");
        return;
    }
    let svc = FixedKv::default();
    let (addr, _stop) = serve(svc.clone()).await;
    let run = tokio::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &addr.to_string(), "--command-timeout=5s"])
        .args(["get", "foo", "--prefix", "--limit=3", "-w", "json"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("etcdctl finished in time")
        .expect("etcdctl ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "etcdctl failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    // Go's JSON: uint64/int64 as numbers, bytes as base64 ("foo" = Zm9v, "bar" = YmFy).
    let want_header = format!(
        r#""header":{{"cluster_id":{CLUSTER_ID},"member_id":{MEMBER_ID},"revision":42,"raft_term":7}}"#
    );
    assert!(stdout.contains(&want_header), "{stdout}");
    assert!(
        stdout.contains(
            r#"{"key":"Zm9v","create_revision":10,"mod_revision":20,"version":3,"value":"YmFy","lease":28672}"#
        ),
        "{stdout}"
    );
    assert!(stdout.contains(r#""more":true"#), "{stdout}");
    assert!(stdout.contains(r#""count":5"#), "{stdout}");
    let seen = svc.ranges.lock().expect("lock").pop().expect("one range");
    assert_eq!(
        (&seen.key[..], &seen.range_end[..], seen.limit),
        (&b"foo"[..], &b"fop"[..], 3)
    );
}

//! etcd 3.4's etcdctl sends the whole endpoint URL (`http://127.0.0.1:PORT`) as the HTTP/2
//! `:authority` of the Maintenance calls it dials per endpoint (`endpoint status`, `endpoint
//! hashkv`, `defrag`); h2 resets such a stream with PROTOCOL_ERROR unless the connection is read
//! through `api::AuthorityFix`, which repairs the header. These tests run a real glassd and the
//! real etcdctl 3.4, check that a client written by others (the `etcd-client` crate) still
//! works through the wrapper, and that HTTP/1.1 (`/health`) passes through it untouched.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::Path;

use glass_tests::member::{etcdctl, Kind, Member, ETCDCTL};

fn glassd(dir: &Path) -> Member {
    Member::start(Kind::Glassd, dir, &[])
}

#[test]
fn etcdctl_per_endpoint_maintenance_calls_succeed() {
    if !Path::new(ETCDCTL).is_file() {
        eprintln!("skipped: {ETCDCTL} is not installed (apt-get install etcd-client)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let m = glassd(dir.path());
    let ep = m.endpoint();
    let ok = |args: &[&str]| {
        let out = etcdctl(&ep, args);
        assert_eq!(
            out.code,
            Some(0),
            "etcdctl {} failed:\n{}\n{}\nglassd:\n{}",
            args.join(" "),
            out.stdout,
            out.stderr,
            m.logs()
        );
        assert!(!out.stderr.contains("PROTOCOL_ERROR"), "{}", out.stderr);
        out.stdout
    };

    ok(&["put", "k", "v"]);
    let status = ok(&["endpoint", "status", "-w", "json"]);
    assert!(
        status.contains(&format!("\"Endpoint\":\"{ep}\"")),
        "{status}"
    );
    assert!(status.contains("\"leader\":"), "{status}");
    let hash = ok(&["endpoint", "hashkv"]);
    assert!(hash.starts_with(&format!("{ep}, ")), "{hash}");
    let defrag = ok(&["defrag"]);
    assert!(
        defrag.contains("Finished defragmenting etcd member"),
        "{defrag}"
    );
    // The cluster-wide forms too.
    ok(&["endpoint", "status", "--cluster"]);
    ok(&["endpoint", "health"]);
    assert_eq!(ok(&["get", "k", "--print-value-only"]).trim(), "v");
}

#[tokio::test]
async fn etcd_client_round_trip_through_the_wrapper() {
    let dir = tempfile::tempdir().unwrap();
    let m = glassd(dir.path());
    let mut client = etcd_client::Client::connect([m.endpoint()], None)
        .await
        .unwrap();
    // Many requests on one connection: the client's HPACK dynamic table fills and evicts.
    for i in 0..300 {
        let key = format!("key-{i:04}");
        client
            .put(key.as_str(), format!("value-{i}"), None)
            .await
            .unwrap();
        let got = client.get(key.as_str(), None).await.unwrap();
        assert_eq!(got.kvs()[0].value_str().unwrap(), format!("value-{i}"));
    }
    // A value spread over many DATA frames.
    let big = vec![b'x'; 1 << 20];
    client.put("big", big.clone(), None).await.unwrap();
    let got = client.get("big", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), &big[..]);
    let status = client.status().await.unwrap();
    assert_ne!(status.leader(), 0);
}

#[test]
fn http1_passes_through() {
    let dir = tempfile::tempdir().unwrap();
    let m = glassd(dir.path());
    let mut s = std::net::TcpStream::connect(("127.0.0.1", m.client_port())).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\"health\":\"true\""), "{resp}");
}

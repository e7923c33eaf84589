//! The KV API of a real `glassd` process through a client written by others (the
//! `etcd-client` crate): every Range/Put/DeleteRange/Txn/Compact option and its edges, etcd's
//! errors for bad input and limits, headers, restart. Each expectation is what etcd 3.4
//! answers (checked against etcd 3.4.23 by `etcdctl_compat.rs` where etcdctl can express it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use etcd_client::{
    AlarmAction, AlarmType, Client, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions,
    SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
};
use glass_tests::http_get;
use glass_tests::member::{Kind, Member};
use tonic::Code;

async fn client(m: &Member) -> Client {
    Client::connect([m.endpoint()], None).await.unwrap()
}

fn status(e: etcd_client::Error) -> tonic::Status {
    match e {
        etcd_client::Error::GRpcStatus(s) => s,
        other => panic!("not a gRPC status: {other:?}"),
    }
}

fn keys(kvs: &[etcd_client::KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| kv.key_str().unwrap().to_string())
        .collect()
}

/// Keys whose create, mod, version and value orders all differ:
/// rev 2 c=1, 3 a=3, 4 b=2, 5 c=2 (c: version 2), 6 d=0, 7 a=4 (a: version 2), 8 a=5 (v3).
async fn fixture(c: &mut Client) {
    for (k, v) in [
        ("c", "1"),
        ("a", "3"),
        ("b", "2"),
        ("c", "2"),
        ("d", "0"),
        ("a", "4"),
        ("a", "5"),
    ] {
        c.put(k, v, None).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_options() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Glassd, dir.path(), &[]);
    let mut c = client(&m).await;
    fixture(&mut c).await;
    c.put("zz/1", "x", None).await.unwrap(); // rev 9
    c.put("zz/2", "y", None).await.unwrap(); // rev 10

    // Single key, header.
    let r = c.get("a", None).await.unwrap();
    let h = r.header().unwrap();
    assert_eq!(h.revision(), 10);
    assert_ne!(h.cluster_id(), 0);
    assert_ne!(h.member_id(), 0);
    assert!(h.raft_term() >= 2);
    let kv = &r.kvs()[0];
    assert_eq!(
        (
            kv.create_revision(),
            kv.mod_revision(),
            kv.version(),
            kv.value_str().unwrap()
        ),
        (3, 8, 3, "5")
    );
    assert_eq!(r.count(), 1);

    // Ranges: [a, c), prefix, from key, every key.
    let r = c
        .get("a", Some(GetOptions::new().with_range("c")))
        .await
        .unwrap();
    assert_eq!(keys(r.kvs()), ["a", "b"]);
    let r = c
        .get("zz/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(keys(r.kvs()), ["zz/1", "zz/2"]);
    let r = c
        .get("c", Some(GetOptions::new().with_from_key()))
        .await
        .unwrap();
    assert_eq!(keys(r.kvs()), ["c", "d", "zz/1", "zz/2"]);
    let r = c
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .unwrap();
    assert_eq!(r.count(), 6);

    // Limit and more.
    let r = c
        .get("", Some(GetOptions::new().with_all_keys().with_limit(2)))
        .await
        .unwrap();
    assert_eq!(keys(r.kvs()), ["a", "b"]);
    assert!(r.more());
    assert_eq!(r.count(), 6);
    let r = c
        .get("", Some(GetOptions::new().with_all_keys().with_limit(6)))
        .await
        .unwrap();
    assert!(!r.more());

    // Every sort target, both orders (over a..d; keys with equal targets stay in key order).
    let cases = [
        (SortTarget::Key, ["a", "b", "c", "d"]),
        (SortTarget::Create, ["c", "a", "b", "d"]),
        (SortTarget::Mod, ["b", "c", "d", "a"]),
        (SortTarget::Value, ["d", "b", "c", "a"]),
        (SortTarget::Version, ["b", "d", "c", "a"]),
    ];
    for (target, asc) in cases {
        let r = c
            .get(
                "a",
                Some(
                    GetOptions::new()
                        .with_range("e")
                        .with_sort(target, SortOrder::Ascend),
                ),
            )
            .await
            .unwrap();
        assert_eq!(keys(r.kvs()), asc, "{target:?} ascending");
        let r = c
            .get(
                "a",
                Some(
                    GetOptions::new()
                        .with_range("e")
                        .with_sort(target, SortOrder::Descend),
                ),
            )
            .await
            .unwrap();
        let got = keys(r.kvs());
        if target == SortTarget::Version {
            // b and d both have version 1: descending keeps their key order (as etcd's
            // insertion sort does for short results).
            assert_eq!(got, ["a", "c", "b", "d"]);
        } else if target == SortTarget::Value {
            // b and c both hold "2".
            assert_eq!(got, ["a", "b", "c", "d"]);
        } else {
            let mut desc = asc.to_vec();
            desc.reverse();
            assert_eq!(got, desc, "{target:?} descending");
        }
        // A sorted range with a limit sorts first, then cuts.
        let r = c
            .get(
                "a",
                Some(
                    GetOptions::new()
                        .with_range("e")
                        .with_sort(target, SortOrder::Ascend)
                        .with_limit(1),
                ),
            )
            .await
            .unwrap();
        assert_eq!(keys(r.kvs()), [asc[0]]);
        assert!(r.more());
    }

    // count_only over a range, keys_only.
    let r = c
        .get(
            "a",
            Some(GetOptions::new().with_range("zz").with_count_only()),
        )
        .await
        .unwrap();
    assert_eq!((r.count(), r.kvs().len()), (4, 0));
    let r = c
        .get(
            "a",
            Some(GetOptions::new().with_range("c").with_keys_only()),
        )
        .await
        .unwrap();
    assert_eq!(keys(r.kvs()), ["a", "b"]);
    assert!(r.kvs().iter().all(|kv| kv.value().is_empty()));

    // Reads at a revision.
    let r = c
        .get("a", Some(GetOptions::new().with_revision(6)))
        .await
        .unwrap();
    assert_eq!(r.kvs()[0].value_str().unwrap(), "3");
    assert_eq!(r.header().unwrap().revision(), 10);
    let r = c
        .get("d", Some(GetOptions::new().with_revision(5)))
        .await
        .unwrap();
    assert!(r.kvs().is_empty());

    // Min/max mod and create revisions (filters before the limit).
    let all = || GetOptions::new().with_range("e");
    let r = c
        .get("a", Some(all().with_min_mod_revision(6)))
        .await
        .unwrap();
    assert_eq!(keys(r.kvs()), ["a", "d"]);
    let r = c
        .get("a", Some(all().with_max_mod_revision(5)))
        .await
        .unwrap();
    assert_eq!(keys(r.kvs()), ["b", "c"]);
    let r = c
        .get("a", Some(all().with_min_create_revision(3)))
        .await
        .unwrap();
    assert_eq!(keys(r.kvs()), ["a", "b", "d"]);
    let r = c
        .get("a", Some(all().with_max_create_revision(3)))
        .await
        .unwrap();
    assert_eq!(keys(r.kvs()), ["a", "c"]);
    let r = c
        .get(
            "a",
            Some(
                all()
                    .with_min_mod_revision(4)
                    .with_max_create_revision(4)
                    .with_limit(1),
            ),
        )
        .await
        .unwrap();
    assert_eq!(keys(r.kvs()), ["a"]);
    assert!(r.more());

    // Serializable and linearizable reads agree on a single member.
    let s = c
        .get("a", Some(GetOptions::new().with_serializable()))
        .await
        .unwrap();
    assert_eq!(s.kvs()[0].value(), b"5");

    // Errors: empty key, future revision, compacted revision.
    let e = status(c.get("", None).await.unwrap_err());
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "etcdserver: key is not provided")
    );
    let e = status(
        c.get("a", Some(GetOptions::new().with_revision(11)))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision"
        )
    );
    c.compact(5, None).await.unwrap();
    let e = status(
        c.get("a", Some(GetOptions::new().with_revision(4)))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted"
        )
    );
    // At the compaction revision itself the read still works.
    let r = c
        .get("c", Some(GetOptions::new().with_revision(5)))
        .await
        .unwrap();
    assert_eq!(r.kvs()[0].value(), b"2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_delete_options() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Glassd, dir.path(), &[]);
    let mut c = client(&m).await;

    let r = c
        .put("k", "v1", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert!(r.prev_key().is_none());
    assert_eq!(r.header().unwrap().revision(), 2);
    let r = c
        .put("k", "v2", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(r.prev_key().unwrap().value(), b"v1");

    // ignore_value keeps the value; on a missing key it is etcd's key-not-found.
    c.put("k", "", Some(PutOptions::new().with_ignore_value()))
        .await
        .unwrap();
    let g = c.get("k", None).await.unwrap();
    assert_eq!((g.kvs()[0].value(), g.kvs()[0].version()), (&b"v2"[..], 3));
    let e = status(
        c.put("nope", "", Some(PutOptions::new().with_ignore_value()))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "etcdserver: key not found")
    );
    let e = status(
        c.put("k", "x", Some(PutOptions::new().with_ignore_value()))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.message(), "etcdserver: value is provided");
    c.put("k", "v3", Some(PutOptions::new().with_ignore_lease()))
        .await
        .unwrap();
    let e = status(
        c.put("nope", "x", Some(PutOptions::new().with_ignore_lease()))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.message(), "etcdserver: key not found");
    let e = status(
        c.put(
            "k",
            "x",
            Some(PutOptions::new().with_ignore_lease().with_lease(5)),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.message(), "etcdserver: lease is provided");
    // No lease exists until leases are built.
    let e = status(
        c.put("k", "x", Some(PutOptions::new().with_lease(0x1234)))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (e.code(), e.message()),
        (Code::NotFound, "etcdserver: requested lease not found")
    );
    let e = status(c.put("", "x", None).await.unwrap_err());
    assert_eq!(e.message(), "etcdserver: key is not provided");
    // A failed put changes nothing.
    assert_eq!(
        c.get("k", None).await.unwrap().header().unwrap().revision(),
        5
    );

    // Deletes: one key, a range with prev_kv, nothing.
    for k in ["p/1", "p/2", "p/3"] {
        c.put(k, k, None).await.unwrap();
    }
    let d = c.delete("p/1", None).await.unwrap();
    assert_eq!((d.deleted(), d.header().unwrap().revision()), (1, 9));
    let d = c
        .delete(
            "p/",
            Some(DeleteOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .unwrap();
    assert_eq!(d.deleted(), 2);
    assert_eq!(keys(d.prev_kvs()), ["p/2", "p/3"]);
    assert_eq!(d.header().unwrap().revision(), 10);
    let d = c
        .delete("p/", Some(DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!((d.deleted(), d.header().unwrap().revision()), (0, 10));
    let d = c
        .delete(
            "",
            Some(DeleteOptions::new().with_all_keys().with_prev_key()),
        )
        .await
        .unwrap();
    assert_eq!(keys(d.prev_kvs()), ["k"]);

    // A request over --max-request-bytes (1.5 MiB) gets etcd's error, not a transport one.
    let big = vec![b'x'; 1_600_000];
    let e = status(c.put("big", big, None).await.unwrap_err());
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "etcdserver: request is too large")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_compares_branches_and_nesting() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Glassd, dir.path(), &["--max-txn-ops", "4"]);
    let mut c = client(&m).await;
    fixture(&mut c).await; // a: create 3, mod 8, version 3, value "5"

    let hit = |cmp: Compare| Txn::new().when([cmp]).and_then([TxnOp::get("a", None)]);
    let cases = [
        (Compare::value("a", CompareOp::Equal, "5"), true),
        (Compare::value("a", CompareOp::Greater, "4"), true),
        (Compare::value("a", CompareOp::Less, "4"), false),
        (Compare::value("a", CompareOp::NotEqual, "5"), false),
        (Compare::version("a", CompareOp::Equal, 3), true),
        (Compare::version("a", CompareOp::Greater, 3), false),
        (Compare::create_revision("a", CompareOp::Equal, 3), true),
        (Compare::create_revision("a", CompareOp::Less, 3), false),
        (Compare::mod_revision("a", CompareOp::Equal, 8), true),
        (Compare::mod_revision("a", CompareOp::NotEqual, 8), false),
        (Compare::lease("a", CompareOp::Equal, 0), true),
        // A missing key: value compares fail, others compare against zero.
        (Compare::value("nope", CompareOp::Equal, ""), false),
        (Compare::version("nope", CompareOp::Equal, 0), true),
        (Compare::create_revision("nope", CompareOp::Equal, 0), true),
        // A range: every key must match.
        (
            Compare::version("a", CompareOp::Greater, 0).with_range("e"),
            true,
        ),
        (
            Compare::version("a", CompareOp::Greater, 1).with_range("e"),
            false,
        ),
        (
            Compare::mod_revision("b", CompareOp::Less, 6).with_range("d"),
            true,
        ),
    ];
    for (cmp, want) in cases {
        let r = c.txn(hit(cmp.clone())).await.unwrap();
        assert_eq!(r.succeeded(), want, "{cmp:?}");
        // Read-only: the revision does not move.
        assert_eq!(r.header().unwrap().revision(), 8);
    }

    // Both branches, with writes: the failure branch runs its ops.
    let t = Txn::new()
        .when([Compare::value("a", CompareOp::Equal, "nope")])
        .and_then([TxnOp::put("x", "then", None)])
        .or_else([
            TxnOp::put("x", "else", Some(PutOptions::new().with_prev_key())),
            TxnOp::get("x", None),
            TxnOp::delete("b", Some(DeleteOptions::new().with_prev_key())),
        ]);
    let r = c.txn(t).await.unwrap();
    assert!(!r.succeeded());
    assert_eq!(r.header().unwrap().revision(), 9);
    let ops = r.op_responses();
    match (&ops[0], &ops[1], &ops[2]) {
        (TxnOpResponse::Put(p), TxnOpResponse::Get(g), TxnOpResponse::Delete(d)) => {
            assert!(p.prev_key().is_none());
            // Later ops see earlier ones.
            assert_eq!(g.kvs()[0].value(), b"else");
            assert_eq!(g.kvs()[0].mod_revision(), 9);
            assert_eq!(d.deleted(), 1);
            assert_eq!(d.prev_kvs()[0].value(), b"2");
        }
        other => panic!("unexpected responses {other:?}"),
    }

    // Nested txns: the inner compares see the state before the outer ops.
    let inner_ok = Txn::new()
        .when([Compare::value("x", CompareOp::Equal, "else")])
        .and_then([TxnOp::put("y", "inner-then", None)])
        .or_else([TxnOp::put("y", "inner-else", None)]);
    let inner_fail = Txn::new()
        .when([Compare::version("x", CompareOp::Equal, 5)])
        .and_then([TxnOp::put("z", "no", None)])
        .or_else([TxnOp::put("z", "yes", None)]);
    let t = Txn::new()
        .when([Compare::version("x", CompareOp::Equal, 1)])
        .and_then([
            TxnOp::put("x", "outer", None),
            TxnOp::txn(inner_ok),
            TxnOp::txn(inner_fail),
        ]);
    let r = c.txn(t).await.unwrap();
    assert!(r.succeeded());
    assert_eq!(r.header().unwrap().revision(), 10);
    let ops = r.op_responses();
    match (&ops[1], &ops[2]) {
        (TxnOpResponse::Txn(a), TxnOpResponse::Txn(b)) => {
            assert!(a.succeeded());
            assert!(!b.succeeded());
        }
        other => panic!("unexpected responses {other:?}"),
    }
    let g = c.get("y", None).await.unwrap();
    assert_eq!(g.kvs()[0].value(), b"inner-then");
    assert_eq!(g.kvs()[0].mod_revision(), 10);
    assert_eq!(c.get("z", None).await.unwrap().kvs()[0].value(), b"yes");

    // Limits and bad input: --max-txn-ops, duplicate keys, a bad revision in a branch.
    let too_many = Txn::new().and_then([
        TxnOp::get("a", None),
        TxnOp::get("b", None),
        TxnOp::get("c", None),
        TxnOp::get("d", None),
        TxnOp::get("e", None),
    ]);
    let e = status(c.txn(too_many).await.unwrap_err());
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request"
        )
    );
    let dup = Txn::new().and_then([TxnOp::put("q", "1", None), TxnOp::put("q", "2", None)]);
    let e = status(c.txn(dup).await.unwrap_err());
    assert_eq!(
        e.message(),
        "etcdserver: duplicate key given in txn request"
    );
    let dup = Txn::new().and_then([
        TxnOp::delete("a", Some(DeleteOptions::new().with_range("z"))),
        TxnOp::put("q", "1", None),
    ]);
    let e = status(c.txn(dup).await.unwrap_err());
    assert_eq!(
        e.message(),
        "etcdserver: duplicate key given in txn request"
    );
    let future = Txn::new().and_then([
        TxnOp::put("w", "1", None),
        TxnOp::get("a", Some(GetOptions::new().with_revision(1000))),
    ]);
    let e = status(c.txn(future).await.unwrap_err());
    assert_eq!(
        e.message(),
        "etcdserver: mvcc: required revision is a future revision"
    );
    // Nothing of a refused txn was written.
    assert!(c.get("w", None).await.unwrap().kvs().is_empty());
    assert_eq!(
        c.get("a", None).await.unwrap().header().unwrap().revision(),
        10
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_status_members_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(Kind::Glassd, dir.path(), &[]);
    let mut c = client(&m).await;
    for i in 0..20 {
        c.put(format!("k{}", i % 4), format!("v{i}"), None)
            .await
            .unwrap();
    }
    // Future and physical compactions.
    let e = status(c.compact(100, None).await.unwrap_err());
    assert_eq!(
        e.message(),
        "etcdserver: mvcc: required revision is a future revision"
    );
    let r = c
        .compact(
            15,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .unwrap();
    assert_eq!(r.header().unwrap().revision(), 21);
    let e = status(c.compact(10, None).await.unwrap_err());
    assert_eq!(
        e.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    let h1 = c.hash_kv(0).await.unwrap().hash();

    // Status and member list tell the truth.
    let st = c.status().await.unwrap();
    let h = st.header().unwrap();
    assert_eq!(st.leader(), h.member_id());
    assert!(st.raft_term() >= 2);
    assert!(st.raft_index() >= 21);
    assert!(st.raft_applied_index() >= 21);
    assert!(
        st.db_size() > 0 && st.raft_used_db_size() > 0 && st.raft_used_db_size() <= st.db_size()
    );
    assert!(st.errors().is_empty());
    let ml = c.member_list().await.unwrap();
    assert_eq!(ml.members().len(), 1);
    assert_eq!(ml.members()[0].id(), h.member_id());
    assert_eq!(ml.members()[0].client_urls(), [m.endpoint()]);
    let (id, cid) = (h.member_id(), h.cluster_id());

    // A clean restart keeps data, revisions, ids and the compaction.
    m.restart();
    let mut c = client(&m).await;
    let g = c
        .get("k", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert_eq!(g.count(), 4);
    assert_eq!(g.header().unwrap().revision(), 21);
    assert_eq!(
        (
            g.header().unwrap().member_id(),
            g.header().unwrap().cluster_id()
        ),
        (id, cid)
    );
    assert_eq!(c.hash_kv(0).await.unwrap().hash(), h1);
    let e = status(
        c.get("k0", Some(GetOptions::new().with_revision(14)))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        e.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    let p = c.put("k0", "after", None).await.unwrap();
    assert_eq!(p.header().unwrap().revision(), 22);

    // Services not built yet say so.
    let e = status(c.lease_grant(10, None).await.unwrap_err());
    assert_eq!(e.code(), Code::Unimplemented);
    assert!(e.message().contains("LeaseGrant"), "{}", e.message());
    // Defragment works and keeps the data.
    c.defragment().await.unwrap();
    assert_eq!(c.get("k0", None).await.unwrap().kvs()[0].value(), b"after");
    // Alarms: none.
    let a = c
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .unwrap();
    assert!(a.alarms().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_raises_nospace_until_disarmed() {
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB quota: etcd's message and alarm once the file would pass it.
    let m = Member::start(
        Kind::Glassd,
        dir.path(),
        &["--quota-backend-bytes", "1048576"],
    );
    let mut c = client(&m).await;
    let value = vec![b'v'; 16 * 1024];
    let mut refused = None;
    for i in 0..200 {
        match c.put(format!("k{i:03}"), value.clone(), None).await {
            Ok(_) => {}
            Err(e) => {
                refused = Some((i, status(e)));
                break;
            }
        }
    }
    if refused.is_none() {
        let st = c.status().await.unwrap();
        panic!(
            "the quota never refused a put: db size {}, errors {:?}, member {:x} (ours {:x})\n{}",
            st.db_size(),
            st.errors(),
            st.header().unwrap().member_id(),
            m.identity().member_id,
            m.logs()
        );
    }
    let (n, e) = refused.unwrap();
    // A put can pass the API's check and fail at apply (a backend commit grew the file in
    // between): then the next put raises the alarm, as in etcd.
    let _ = c.put("one-more", value.clone(), None).await;
    assert!(n > 10, "refused after only {n} puts");
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::ResourceExhausted,
            "etcdserver: mvcc: database space exceeded"
        )
    );
    let a = c
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .unwrap();
    assert_eq!(a.alarms().len(), 1);
    assert_eq!(a.alarms()[0].alarm(), AlarmType::Nospace);
    // Reads and deletes still work; puts and writing txns do not, even small ones.
    assert!(c.get("k000", None).await.is_ok());
    let e = status(c.put("small", "x", None).await.unwrap_err());
    assert_eq!(e.message(), "etcdserver: mvcc: database space exceeded");
    let st = c.status().await.unwrap();
    assert!(
        st.errors().iter().any(|s| s.contains("NOSPACE")),
        "{:?}",
        st.errors()
    );
    // Free space (delete, compact, defragment), disarm: writes work again.
    let d = c
        .delete("k", Some(DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    assert!(d.deleted() > 10);
    let rev = d.header().unwrap().revision();
    c.compact(
        rev,
        Some(etcd_client::CompactionOptions::new().with_physical()),
    )
    .await
    .unwrap();
    c.defragment().await.unwrap();
    let mut opts = etcd_client::AlarmOptions::new();
    opts.with_member(a.alarms()[0].member_id());
    c.alarm(AlarmAction::Deactivate, AlarmType::Nospace, Some(opts))
        .await
        .unwrap();
    c.put("small", "x", None).await.unwrap();
    assert!(c
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .unwrap()
        .alarms()
        .is_empty());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_dir_snapshots_metrics_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("elsewhere-wal");
    let metrics_port = free_port();
    let metrics_url = format!("http://127.0.0.1:{metrics_port}");
    let mut m = Member::start(
        Kind::Glassd,
        dir.path(),
        &[
            "--wal-dir",
            wal_dir.to_str().unwrap(),
            "--snapshot-count",
            "50",
            "--listen-metrics-urls",
            &metrics_url,
        ],
    );
    let mut c = client(&m).await;
    for i in 0..300 {
        c.put(format!("k{i:03}"), "v", None).await.unwrap();
    }
    // The WAL is where --wal-dir says, not under the data directory.
    let wals: Vec<_> = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        wals.iter().any(|n| n.to_string_lossy().ends_with(".wal")),
        "{wals:?}"
    );
    assert!(!m.data_dir().join("member/wal").exists());
    // Snapshots every 50 applied entries (at most a few kept).
    let snaps: Vec<_> = std::fs::read_dir(m.data_dir().join("member/snap"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".snap"))
        .collect();
    assert!(
        !snaps.is_empty(),
        "no snapshot after 300 entries with --snapshot-count 50"
    );

    // /metrics on the client URL and on --listen-metrics-urls; /health; /version.
    for port in [m.client_port(), metrics_port] {
        let (code, body) = http_get(port, "/metrics");
        assert_eq!(code, 200);
        for name in [
            "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"}",
            "etcd_disk_backend_commit_duration_seconds_count",
            "etcd_server_proposals_committed_total",
            "etcd_mvcc_db_total_size_in_bytes",
            "etcd_server_has_leader 1",
            "glass_mvcc_treeindex_lock_wait_seconds_bucket",
            "glass_backend_tx_lock_wait_seconds_count",
            "glass_freelist_allocate_seconds_count",
            "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Put\"",
        ] {
            assert!(body.contains(name), "/metrics on {port} lacks {name}");
        }
    }
    let (code, body) = http_get(m.client_port(), "/health");
    assert_eq!((code, body.as_str()), (200, "{\"health\":\"true\"}"));
    let (code, body) = http_get(metrics_port, "/version");
    assert_eq!(code, 200);
    assert!(body.contains("\"etcdserver\":\"3.4"), "{body}");

    // Everything is back after a restart (from the snapshot's WAL position on).
    m.restart();
    let mut c = client(&m).await;
    let r = c
        .get("k", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .unwrap();
    assert_eq!(r.count(), 300);
    assert_eq!(r.header().unwrap().revision(), 301);
}

/// Client input that once could take a member down: a limit of i64::MAX (overflowed `limit + 1`
/// with overflow checks on), a txn nested deeper than the applier's decoder allows, and a txn
/// deleting to the end of the key space beside a put (etcd accepts it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_do_not_stop_the_member() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(Kind::Glassd, dir.path(), &[]);
    let mut c = client(&m).await;
    fixture(&mut c).await;
    let r = c
        .get(
            "a",
            Some(GetOptions::new().with_range("e").with_limit(i64::MAX)),
        )
        .await
        .unwrap();
    assert_eq!(r.kvs().len(), 4);
    let t = Txn::new().and_then([
        TxnOp::put("w", "1", None),
        TxnOp::get(
            "a",
            Some(GetOptions::new().with_range("e").with_limit(i64::MAX)),
        ),
    ]);
    assert!(c.txn(t).await.unwrap().succeeded());

    // 49 levels of nesting with a put at the bottom.
    let mut t = Txn::new().and_then([TxnOp::put("deep", "1", None)]);
    for _ in 0..48 {
        t = Txn::new().and_then([TxnOp::txn(t)]);
    }
    let e = status(c.txn(t).await.unwrap_err());
    assert_eq!(
        e.message(),
        "etcdserver: too many operations in txn request"
    );
    // 20 levels are fine.
    let mut t = Txn::new().and_then([TxnOp::put("deep", "1", None)]);
    for _ in 0..19 {
        t = Txn::new().and_then([TxnOp::txn(t)]);
    }
    assert!(c.txn(t).await.unwrap().succeeded());

    // etcd takes a delete's "\0" end literally in the duplicate-key check.
    let t = Txn::new().and_then([
        TxnOp::delete("x", Some(DeleteOptions::new().with_from_key())),
        TxnOp::put("z", "1", None),
    ]);
    assert!(c.txn(t).await.unwrap().succeeded());
    assert_eq!(c.get("z", None).await.unwrap().kvs()[0].value(), b"1");

    // Still serving, and after a restart too.
    m.restart();
    let mut c = client(&m).await;
    c.put("after", "x", None).await.unwrap();
    assert_eq!(c.get("deep", None).await.unwrap().kvs()[0].value(), b"1");
}

//! Model-based tests of the bbolt-format engine: random operation sequences run against the
//! engine and against a `BTreeMap` model, with both freelists, small pages (deep trees, many
//! splits and merges), rollbacks, reopens, long-lived read snapshots and injected crashes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use glassd::storage::btree::{
    check, BucketId, Db, FileBackend, FreelistType, MemFile, Options, Tx,
};
use proptest::prelude::*;

/// Bucket path → entries. The top level holds buckets only.
type Model = BTreeMap<Vec<Vec<u8>>, BTreeMap<Vec<u8>, Vec<u8>>>;

#[derive(Debug, Clone)]
enum Op {
    Put {
        bucket: usize,
        key: u8,
        klen: usize,
        vlen: usize,
    },
    Delete {
        bucket: usize,
        key: u8,
        klen: usize,
    },
    CreateBucket {
        parent: usize,
        name: u8,
    },
    DeleteBucket {
        bucket: usize,
    },
    Sequence {
        bucket: usize,
        v: u64,
    },
    Commit,
    Rollback,
    Reopen,
    OpenReader,
    CheckReaders,
    CloseReader,
    SwitchFreelist,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (0..8usize, any::<u8>(), 1..24usize, prop_oneof![9 => 0..300usize, 1 => 1000..5000usize])
            .prop_map(|(bucket, key, klen, vlen)| Op::Put { bucket, key, klen, vlen }),
        12 => (0..8usize, any::<u8>(), 1..24usize).prop_map(|(bucket, key, klen)| Op::Delete { bucket, key, klen }),
        3 => (0..8usize, 0..4u8).prop_map(|(parent, name)| Op::CreateBucket { parent, name }),
        1 => (0..8usize).prop_map(|bucket| Op::DeleteBucket { bucket }),
        1 => (0..8usize, any::<u64>()).prop_map(|(bucket, v)| Op::Sequence { bucket, v }),
        6 => Just(Op::Commit),
        2 => Just(Op::Rollback),
        1 => Just(Op::Reopen),
        1 => Just(Op::OpenReader),
        1 => Just(Op::CheckReaders),
        1 => Just(Op::CloseReader),
        1 => Just(Op::SwitchFreelist),
    ]
}

/// A key of `klen` bytes derived from `k`, so that few distinct keys recur often.
fn key(k: u8, klen: usize) -> Vec<u8> {
    let mut v = vec![k % 48; klen];
    v[0] = k % 48;
    v
}

fn value(k: u8, vlen: usize, salt: u64) -> Vec<u8> {
    (0..vlen)
        .map(|i| (i as u64 ^ salt ^ u64::from(k)) as u8)
        .collect()
}

fn open_path(tx: &mut Tx, path: &[Vec<u8>]) -> Option<BucketId> {
    let mut b = tx.root();
    for name in path {
        b = tx.bucket(b, name).unwrap()?;
    }
    Some(b)
}

/// Everything the tx sees, as a model.
fn read_all(tx: &mut Tx) -> Model {
    fn walk(tx: &mut Tx, b: BucketId, path: &mut Vec<Vec<u8>>, out: &mut Model) {
        let mut entries = BTreeMap::new();
        let mut nested = Vec::new();
        tx.for_each(b, |k, v| {
            match v {
                Some(v) => {
                    entries.insert(k.to_vec(), v.to_vec());
                }
                None => nested.push(k.to_vec()),
            }
            Ok::<(), glassd::storage::btree::Error>(())
        })
        .unwrap();
        if !path.is_empty() {
            out.insert(path.clone(), entries);
        } else {
            assert!(entries.is_empty(), "plain keys at the top level");
        }
        for name in nested {
            let c = tx.bucket(b, &name).unwrap().expect("listed bucket opens");
            path.push(name);
            walk(tx, c, path, out);
            path.pop();
        }
    }
    let mut out = Model::new();
    let root = tx.root();
    walk(tx, root, &mut Vec::new(), &mut out);
    out
}

fn assert_consistent(db: &Db) {
    let tx = db.begin_read().unwrap();
    let report = check(&tx, db.raw_metas());
    assert!(report.ok(), "check: {:?}", report.problems);
    assert!(
        report.warnings.is_empty(),
        "check warnings: {:?}",
        report.warnings
    );
}

struct Harness {
    file: MemFile,
    opts: Options,
    db: Db,
    tx: Option<Tx>,
    committed: Model,
    pending: Model,
    readers: Vec<(Tx, Model)>,
    salt: u64,
}

impl Harness {
    fn new(freelist: FreelistType, no_freelist_sync: bool) -> Harness {
        let file = MemFile::new();
        let opts = Options {
            freelist_type: freelist,
            no_freelist_sync,
            page_size: Some(1024),
            ..Options::default()
        };
        let db = Db::open_backend(Arc::new(file.clone()), opts.clone()).unwrap();
        Harness {
            file,
            opts,
            db,
            tx: None,
            committed: Model::new(),
            pending: Model::new(),
            readers: Vec::new(),
            salt: 0,
        }
    }

    fn tx(&mut self) -> &mut Tx {
        if self.tx.is_none() {
            self.tx = Some(self.db.begin_write().unwrap());
            self.pending = self.committed.clone();
        }
        self.tx.as_mut().unwrap()
    }

    /// Bucket paths in the pending model, in order; index `i` picks one (modulo).
    fn pick(&mut self, i: usize) -> Option<Vec<Vec<u8>>> {
        self.tx();
        let paths: Vec<_> = self.pending.keys().cloned().collect();
        if paths.is_empty() {
            None
        } else {
            Some(paths[i % paths.len()].clone())
        }
    }

    fn apply(&mut self, op: &Op) {
        self.salt += 1;
        match *op {
            Op::Put {
                bucket,
                key: k,
                klen,
                vlen,
            } => {
                let Some(path) = self.pick(bucket) else {
                    return;
                };
                let (key, val) = (key(k, klen), value(k, vlen, self.salt));
                // A key that names a nested bucket cannot take a value.
                let mut sub = path.clone();
                sub.push(key.clone());
                let clash = self.pending.contains_key(&sub);
                let tx = self.tx();
                let b = open_path(tx, &path).unwrap();
                let r = tx.put(b, &key, &val);
                if clash {
                    assert!(r.is_err());
                } else {
                    r.unwrap();
                    self.pending.get_mut(&path).unwrap().insert(key, val);
                }
            }
            Op::Delete {
                bucket,
                key: k,
                klen,
            } => {
                let Some(path) = self.pick(bucket) else {
                    return;
                };
                let key = key(k, klen);
                let mut sub = path.clone();
                sub.push(key.clone());
                let clash = self.pending.contains_key(&sub);
                let tx = self.tx();
                let b = open_path(tx, &path).unwrap();
                let r = tx.delete(b, &key);
                if clash {
                    assert!(r.is_err());
                } else {
                    r.unwrap();
                    self.pending.get_mut(&path).unwrap().remove(&key);
                }
            }
            Op::CreateBucket { parent, name } => {
                self.tx();
                let path = if parent % 3 == 0 {
                    Vec::new()
                } else {
                    match self.pick(parent) {
                        Some(p) if p.len() < 3 => p,
                        _ => Vec::new(),
                    }
                };
                let name = vec![b'b', name];
                let mut full = path.clone();
                full.push(name.clone());
                let exists = self.pending.contains_key(&full);
                let value_clash = !path.is_empty()
                    && self
                        .pending
                        .get(&path)
                        .is_some_and(|e| e.contains_key(&name));
                let tx = self.tx();
                let b = open_path(tx, &path).unwrap();
                let r = tx.create_bucket(b, &name);
                if exists || value_clash {
                    assert!(r.is_err(), "create of an existing name must fail");
                } else {
                    r.unwrap();
                    self.pending.insert(full, BTreeMap::new());
                }
            }
            Op::DeleteBucket { bucket } => {
                let Some(path) = self.pick(bucket) else {
                    return;
                };
                let (parent, name) = path.split_at(path.len() - 1);
                let tx = self.tx();
                let b = open_path(tx, parent).unwrap();
                tx.delete_bucket(b, &name[0]).unwrap();
                self.pending.retain(|p, _| !p.starts_with(&path));
            }
            Op::Sequence { bucket, v } => {
                let Some(path) = self.pick(bucket) else {
                    return;
                };
                let tx = self.tx();
                let b = open_path(tx, &path).unwrap();
                tx.set_sequence(b, v).unwrap();
                assert_eq!(tx.sequence(b).unwrap(), v);
            }
            Op::Commit => {
                if let Some(mut tx) = self.tx.take() {
                    assert_eq!(read_all(&mut tx), self.pending, "tx view before commit");
                    tx.commit().unwrap();
                    self.committed = std::mem::take(&mut self.pending);
                    assert_consistent(&self.db);
                }
            }
            Op::Rollback => {
                if let Some(tx) = self.tx.take() {
                    tx.rollback();
                }
            }
            Op::Reopen => {
                self.tx = None;
                self.readers.clear();
                self.db = Db::open_backend(Arc::new(self.file.clone()), self.opts.clone()).unwrap();
                let mut r = self.db.begin_read().unwrap();
                assert_eq!(read_all(&mut r), self.committed, "after reopen");
            }
            Op::OpenReader => {
                let r = self.db.begin_read().unwrap();
                self.readers.push((r, self.committed.clone()));
            }
            Op::CheckReaders => {
                for (r, m) in &mut self.readers {
                    assert_eq!(&read_all(r), m, "a reader's snapshot changed");
                }
            }
            Op::CloseReader => {
                if !self.readers.is_empty() {
                    self.readers.remove(0);
                }
            }
            Op::SwitchFreelist => {
                let next = match self.db.freelist_type() {
                    FreelistType::Array => FreelistType::Map,
                    _ => FreelistType::Array,
                };
                self.db.set_freelist_type(next);
            }
        }
    }

    fn finish(mut self) {
        self.apply(&Op::Commit);
        self.apply(&Op::CheckReaders);
        self.readers.clear();
        self.apply(&Op::Reopen);
        assert_consistent(&self.db);
    }
}

fn run(ops: &[Op], freelist: FreelistType, no_freelist_sync: bool) {
    let mut h = Harness::new(freelist, no_freelist_sync);
    // Start with two top-level buckets so that puts have somewhere to go.
    h.apply(&Op::CreateBucket { parent: 0, name: 0 });
    h.apply(&Op::CreateBucket { parent: 0, name: 1 });
    for op in ops {
        h.apply(op);
    }
    h.finish();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn model_map_freelist(ops in prop::collection::vec(op(), 1..800)) {
        run(&ops, FreelistType::Map, false);
    }

    #[test]
    fn model_array_freelist(ops in prop::collection::vec(op(), 1..800)) {
        run(&ops, FreelistType::Array, false);
    }

    #[test]
    fn model_freelist_not_persisted(ops in prop::collection::vec(op(), 1..800)) {
        run(&ops, FreelistType::Map, true);
    }
}

/// Cuts a commit after every write and every sync in turn. Reopening what a power cut leaves
/// (only synced bytes) must give exactly the last committed state; reopening what a process
/// kill leaves (every byte written) must give the last committed state or the new one.
#[test]
fn crash_at_every_write_and_sync_of_a_commit() {
    let mut rng_state = 7u64;
    let mut next = move || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    for freelist in [FreelistType::Map, FreelistType::Array] {
        let mut h = Harness::new(freelist, false);
        h.apply(&Op::CreateBucket { parent: 0, name: 0 });
        h.apply(&Op::CreateBucket { parent: 0, name: 1 });
        h.apply(&Op::Commit);
        for round in 0..12 {
            // Ops of one tx, to replay on copies of the file.
            let ops: Vec<Op> = (0..(20 + next() % 200))
                .map(|_| {
                    let r = next();
                    if r % 4 == 0 {
                        Op::Delete {
                            bucket: (r >> 8) as usize,
                            key: (r >> 16) as u8,
                            klen: 1 + (r >> 24) as usize % 20,
                        }
                    } else {
                        Op::Put {
                            bucket: (r >> 8) as usize,
                            key: (r >> 16) as u8,
                            klen: 1 + (r >> 24) as usize % 20,
                            vlen: if r % 97 == 0 {
                                3000
                            } else {
                                (r >> 32) as usize % 300
                            },
                        }
                    }
                })
                .collect();
            let before = h.file.written_image();
            let committed = h.committed.clone();
            // The real commit, to learn the number of writes and syncs and the new state.
            let ops_before = h.file.ops();
            for op in &ops {
                h.apply(op);
            }
            h.apply(&Op::Commit);
            let new_state = h.committed.clone();
            let steps = h.file.ops() - ops_before;
            assert!(steps >= 4, "a commit writes and syncs at least twice each");
            for k in 0..steps {
                let copy = MemFile::from_bytes(before.clone());
                let db = Db::open_backend(Arc::new(copy.clone()), h.opts.clone()).unwrap();
                let mut rh = Harness {
                    file: copy.clone(),
                    opts: h.opts.clone(),
                    db,
                    tx: None,
                    committed: committed.clone(),
                    pending: Model::new(),
                    readers: Vec::new(),
                    salt: h.salt - ops.len() as u64 - 1,
                };
                for op in &ops {
                    rh.apply(op);
                }
                copy.crash_after(k);
                let tx = rh.tx.take().unwrap();
                assert!(
                    tx.commit().is_err(),
                    "round {round}: crash at step {k} must fail the commit"
                );
                // Further writes are refused once a commit failed part way.
                assert!(rh.db.begin_write().is_err());
                drop(rh);
                for (what, image) in [
                    ("power cut", copy.durable_image()),
                    ("kill", copy.written_image()),
                ] {
                    let f = MemFile::from_bytes(image);
                    let db = Db::open_backend(Arc::new(f), h.opts.clone()).unwrap_or_else(|e| {
                        panic!("round {round} step {k} ({what}): reopen failed: {e}")
                    });
                    assert_consistent(&db);
                    let got = read_all(&mut db.begin_read().unwrap());
                    if what == "power cut" {
                        assert!(
                            got == committed,
                            "round {round} step {k}: a power cut must leave the last commit"
                        );
                    } else {
                        assert!(
                            got == committed || got == new_state,
                            "round {round} step {k}: a kill leaves the old or the new state"
                        );
                    }
                    // The reopened file takes writes again.
                    let mut tx = db.begin_write().unwrap();
                    let root = tx.root();
                    tx.create_bucket_if_not_exists(root, b"after").unwrap();
                    tx.commit().unwrap();
                    assert_consistent(&db);
                }
            }
        }
    }
}

/// A MemFile used through the trait object behaves like a file.
#[test]
fn memfile_is_a_file() {
    let f = MemFile::new();
    f.write_all_at(b"hello", 3).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, 0).unwrap();
    assert_eq!(&b, b"\0\0\0hello");
    assert!(f.durable_image().is_empty());
    f.sync().unwrap();
    assert_eq!(f.durable_image().len(), 8);
}

//! Interop with the reference bbolt (Debian's v1.3.6, through `boltcheck`): files bbolt writes
//! read back identically in Glass, files Glass writes pass bbolt's own check with the same
//! contents, and `glassd bolt check` agrees with bbolt on broken files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{bolt, glassd, s};
use glassd::storage::btree::{Db, FreelistType, Options};
use rand::{Rng, SeedableRng};

#[test]
fn bbolt_files_dump_identically_in_glass() {
    let dir = tempfile::tempdir().unwrap();
    for fl in ["array", "hashmap"] {
        let f = dir.path().join(format!("{fl}.db"));
        let (ok, sha) = bolt(&["write", s(&f), "50000", "11", fl]);
        assert!(ok, "boltcheck write failed");
        assert_eq!(sha.trim().len(), 64);
        let (_, want) = bolt(&["dump", s(&f)]);
        let (ok, got, err) = glassd(&["bolt", "dump", s(&f)]);
        assert!(ok, "glassd dump failed: {err}");
        assert!(want.lines().count() > 30_000);
        assert!(got == want, "dumps differ for the {fl} file");
        let (ok, out, _) = glassd(&["bolt", "check", s(&f)]);
        assert!(ok && out.trim() == "ok", "glassd check: {out}");

        // compact through Glass's write path: bbolt checks it and sees the same data.
        let g = dir.path().join(format!("{fl}.compact.db"));
        let (ok, _, err) = glassd(&["bolt", "compact", s(&f), s(&g)]);
        assert!(ok, "compact failed: {err}");
        let (ok, out) = bolt(&["check", s(&g)]);
        assert!(
            ok && out.trim() == "ok",
            "bbolt check of the compacted file: {out}"
        );
        let (_, compacted) = bolt(&["dump", s(&g)]);
        assert!(compacted == want, "compacted dump differs ({fl})");
        assert!(std::fs::metadata(&g).unwrap().len() < std::fs::metadata(&f).unwrap().len());
    }
}

/// 200k+ random puts and deletes over nested and top-level buckets, in txs of random size,
/// fragment the freelist; bbolt must call the result consistent and see the same entries.
fn random_workload(freelist: FreelistType, path: &std::path::Path, ops: usize, seed: u64) {
    let db = Db::open(
        path,
        Options {
            freelist_type: freelist,
            no_sync: true,
            ..Options::default()
        },
    )
    .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut done = 0;
    let mut keys: Vec<Vec<u8>> = Vec::new();
    while done < ops {
        let mut tx = db.begin_write().unwrap();
        let root = tx.root();
        let n = rng.gen_range(1..3000);
        for _ in 0..n {
            let bname: &[u8] = [b"key".as_slice(), b"meta", b"lease"][rng.gen_range(0..3)];
            let mut b = tx.create_bucket_if_not_exists(root, bname).unwrap();
            if rng.gen_ratio(1, 4) {
                b = tx.create_bucket_if_not_exists(b, b"nested").unwrap();
            }
            if rng.gen_ratio(2, 5) && !keys.is_empty() {
                let k = keys.swap_remove(rng.gen_range(0..keys.len()));
                tx.delete(b, &k).unwrap();
            } else {
                let k: Vec<u8> = (0..rng.gen_range(1..40)).map(|_| rng.gen()).collect();
                let vlen = if rng.gen_ratio(1, 100) {
                    rng.gen_range(4000..20000)
                } else {
                    rng.gen_range(0..400)
                };
                let v: Vec<u8> = (0..vlen).map(|_| rng.gen()).collect();
                tx.put(b, &k, &v).unwrap();
                keys.push(k);
            }
        }
        if rng.gen_ratio(1, 10) {
            tx.rollback();
        } else {
            tx.commit().unwrap();
        }
        done += n;
    }
}

#[test]
fn glass_random_workload_passes_bbolt_check() {
    let dir = tempfile::tempdir().unwrap();
    for (i, fl) in [FreelistType::Map, FreelistType::Array]
        .into_iter()
        .enumerate()
    {
        let f = dir.path().join(format!("w{i}.db"));
        random_workload(fl, &f, 200_000, 42 + i as u64);
        let (ok, out) = bolt(&["check", s(&f)]);
        assert!(ok && out.trim() == "ok", "bbolt check ({fl}): {out}");
        let (ok, gout, _) = glassd(&["bolt", "check", s(&f)]);
        assert!(ok && gout.trim() == "ok", "glassd check ({fl}): {gout}");
        let (_, want) = bolt(&["dump", s(&f)]);
        let (_, got, _) = glassd(&["bolt", "dump", s(&f)]);
        assert!(want.lines().count() > 1000);
        assert!(got == want, "dumps differ ({fl})");
        let (_, stats, _) = glassd(&["bolt", "stats", s(&f)]);
        let runs: u64 = stats
            .lines()
            .find_map(|l| l.strip_prefix("free_runs "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            runs > 10,
            "the workload should fragment the freelist: {stats}"
        );
    }
}

fn flip(path: &std::path::Path, off: u64, mask: u8) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, off).unwrap();
    b[0] ^= mask;
    f.write_all_at(&b, off).unwrap();
}

fn write_u64(path: &std::path::Path, off: u64, v: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&v.to_le_bytes(), off).unwrap();
}

fn read_u64(path: &std::path::Path, off: u64) -> u64 {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).unwrap();
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, off).unwrap();
    u64::from_le_bytes(b)
}

type Damage = Box<dyn Fn(&std::path::Path)>;

/// Damages a copy of a bbolt-written file in ways bbolt's own check notices (or does not),
/// and requires `glassd bolt check` to reach the same verdict.
#[test]
fn glass_check_agrees_with_bbolt_on_broken_files() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.db");
    assert!(bolt(&["write", s(&base), "3000", "5", "array"]).0);
    let ps = 4096u64;
    // The current meta (larger txid) names the freelist page and the root.
    let (m0, m1) = (read_u64(&base, 16 + 48), read_u64(&base, ps + 16 + 48));
    let meta_at = if m0 > m1 { 0 } else { ps };
    let other_meta = if m0 > m1 { ps } else { 0 };
    let freelist = read_u64(&base, meta_at + 16 + 32);
    let root = read_u64(&base, meta_at + 16 + 16);
    let first_free = read_u64(&base, freelist * ps + 16);
    let hw = read_u64(&base, meta_at + 16 + 40);
    // The first child of the root bucket's page: a bucket's root page.
    let cases: Vec<(&str, Damage, Option<bool>)> = vec![
        ("intact", Box::new(|_| {}), Some(true)),
        // One meta damaged: both tools open with the other one and find nothing wrong.
        (
            "older meta checksum",
            Box::new(move |p| flip(p, other_meta + 60, 0x10)),
            Some(true),
        ),
        (
            "newer meta checksum",
            Box::new(move |p| flip(p, meta_at + 60, 0x10)),
            Some(true),
        ),
        // Both metas damaged: unopenable.
        (
            "both metas",
            Box::new(move |p| {
                flip(p, 16, 0xff);
                flip(p, ps + 16, 0xff);
            }),
            Some(false),
        ),
        // A free page drops off the freelist: unreachable and not free.
        (
            "freelist entry replaced by a live page",
            Box::new(move |p| write_u64(p, freelist * ps + 16, root)),
            Some(false),
        ),
        // The root page's type: an extra bit is harmless to bbolt (it tests the leaf bit) ...
        (
            "root page type extra bit",
            Box::new(move |p| flip(p, root * ps + 8, 0x08)),
            Some(true),
        ),
        // ... but a leaf turned into a branch is not.
        (
            "root page leaf to branch",
            Box::new(move |p| flip(p, root * ps + 8, 0x03)),
            Some(false),
        ),
        // A freed page id beyond the high-water mark.
        (
            "freelist id past the end",
            Box::new(move |p| write_u64(p, freelist * ps + 16, hw + 10)),
            None,
        ),
    ];
    let _ = first_free;
    for (name, damage, expect) in cases {
        let f = dir.path().join(format!("{}.db", name.replace(' ', "_")));
        std::fs::copy(&base, &f).unwrap();
        damage(&f);
        let (bolt_ok, bout) = bolt(&["check", s(&f)]);
        let (glass_ok, gout, gerr) = glassd(&["bolt", "check", s(&f)]);
        assert!(
            !gerr.contains("panicked"),
            "{name}: glassd panicked: {gerr}"
        );
        assert_eq!(
            glass_ok, bolt_ok,
            "{name}: glassd says {glass_ok} ({gout}{gerr}), bbolt says {bolt_ok} ({bout})"
        );
        if let Some(e) = expect {
            assert_eq!(glass_ok, e, "{name}: {gout}");
        }
        if !glass_ok {
            assert!(
                gout.lines().any(|l| l.starts_with("error: ")),
                "{name}: {gout}"
            );
        }
    }
}

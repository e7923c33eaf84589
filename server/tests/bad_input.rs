//! A damaged or foreign file is reported, never trusted blindly, and never makes Glass panic.
//!
//! The property test takes a small file written by Glass (several commits, nested, inline and
//! large buckets, overflow values, freed pages), damages it at random — flipped bits, bytes
//! and words set to telling values in page headers and element tables, meta fields changed
//! under a valid checksum, pages copied over others, truncation — and opens the result
//! read-only: opening, `check`, `dump`, the statistics and a cursor walk of every bucket (both
//! directions, seeks, gets) may fail, but only with errors. The fixed cases pin the messages
//! for the common kinds of bad file, on real files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use glassd::storage::btree::{
    check, check_path, dump, file_stats, BucketId, Db, Error, MemFile, Meta, Options, Tx,
};
use proptest::prelude::*;
use proptest::sample::Index;
use rand::{Rng, SeedableRng};

/// Page size of the property test's file: small, so that a few hundred keys make a tree
/// several levels deep.
const PS: usize = 1024;
/// Bound on the entries a walk or a dump visits (a damaged tree can repeat pages).
const STEPS: usize = 20_000;

/// Writes the content every test file gets: four commits, leaving branch pages, a nested
/// bucket, an inline bucket, overflow values and free pages behind.
fn fill(db: &Db) {
    db.update(|tx| {
        let root = tx.root();
        let key = tx.create_bucket(root, b"key")?;
        for i in 0..400u32 {
            tx.put(key, &i.to_be_bytes(), &[i as u8; 20])?;
        }
        let meta = tx.create_bucket(root, b"meta")?;
        tx.put(meta, b"consistent_index", &7u64.to_be_bytes())?;
        tx.put(meta, b"big", &[0xAB; 3000])?;
        let nested = tx.create_bucket(meta, b"nested")?;
        for i in 0..60u32 {
            tx.put(nested, &i.to_le_bytes(), b"nested value")?;
        }
        tx.set_sequence(nested, 99)?;
        let lease = tx.create_bucket(root, b"lease")?;
        tx.put(lease, b"inline", b"small")
    })
    .unwrap();
    db.update(|tx| {
        let key = tx.bucket_path(&[b"key"])?.unwrap();
        for i in (0..400u32).step_by(3) {
            tx.delete(key, &i.to_be_bytes())?;
        }
        Ok(())
    })
    .unwrap();
    db.update(|tx| {
        let nested = tx.bucket_path(&[b"meta", b"nested"])?.unwrap();
        tx.put(nested, b"late", &[1u8; 1500])
    })
    .unwrap();
    db.update(|tx| {
        let root = tx.root();
        let b = tx.create_bucket(root, b"last")?;
        tx.put(b, b"k", b"v")
    })
    .unwrap();
}

/// The intact file the property test damages (built once, in memory).
fn base_image() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let file = MemFile::new();
        let db = Db::open_backend(
            Arc::new(file.clone()),
            Options {
                page_size: Some(PS as u32),
                no_sync: true,
                ..Options::default()
            },
        )
        .unwrap();
        fill(&db);
        drop(db);
        file.written_image()
    })
}

fn read_only() -> Options {
    Options {
        read_only: true,
        ..Options::default()
    }
}

/// What happened to a file.
#[derive(Debug, Default)]
struct Outcome {
    opened: bool,
    check_ok: bool,
    dumped: usize,
    walked: usize,
}

/// Everything a reader can do to a file; errors are fine, panics are not.
fn exercise(bytes: Vec<u8>) -> Outcome {
    let mut out = Outcome::default();
    let Ok(db) = Db::open_backend(Arc::new(MemFile::from_bytes(bytes)), read_only()) else {
        return out;
    };
    out.opened = true;
    let _ = db.stats();
    let metas = db.raw_metas();
    let Ok(mut tx) = db.begin_read() else {
        return out;
    };
    out.check_ok = check(&tx, metas).ok();
    let _ = dump(&mut tx, &mut |_line| {
        out.dumped += 1;
        if out.dumped > STEPS {
            Err(std::io::Error::other("enough"))
        } else {
            Ok(())
        }
    });
    let _ = file_stats(&mut tx);
    let mut budget = STEPS;
    let root = tx.root();
    let _ = walk(&mut tx, root, 0, &mut budget);
    out.walked = STEPS - budget;
    out
}

/// Opens the file for writing and writes on it for a few commits: every bucket gets puts and
/// deletes, a bucket is created and one deleted. Errors are fine, panics (and aborts: a
/// damaged freelist once made a commit grow the file to petabytes) are not. Returns how many
/// commits went through.
fn exercise_writes(bytes: Vec<u8>) -> usize {
    let options = Options {
        no_sync: true,
        ..Options::default()
    };
    let Ok(db) = Db::open_backend(Arc::new(MemFile::from_bytes(bytes)), options) else {
        return 0;
    };
    let mut commits = 0;
    for round in 0..3u32 {
        let Ok(mut tx) = db.begin_write() else {
            return commits;
        };
        let root = tx.root();
        let mut names = Vec::new();
        let written = tx
            .for_each(root, |k, _| {
                names.push(k.to_vec());
                Ok::<(), Error>(())
            })
            .and_then(|()| {
                for name in &names {
                    if let Some(b) = tx.bucket(root, name)? {
                        for i in 0..50u32 {
                            tx.put(b, &(i * 7 + round).to_be_bytes(), &[3u8; 100])?;
                            tx.delete(b, &(i * 3).to_be_bytes())?;
                        }
                    }
                }
                let b = tx.create_bucket_if_not_exists(root, b"new")?;
                tx.put(b, &round.to_be_bytes(), &[1u8; 2000])?;
                if round == 2 {
                    tx.delete_bucket(root, b"key")?;
                }
                Ok(())
            });
        if written.is_err() || tx.commit().is_err() {
            return commits;
        }
        commits += 1;
    }
    commits
}

/// Visits bucket `b` forwards and backwards, seeks and gets some of its keys, and recurses
/// into nested buckets; at most `budget` entries in all.
fn walk(tx: &mut Tx, b: BucketId, depth: usize, budget: &mut usize) -> Result<(), Error> {
    if depth > 8 {
        return Ok(());
    }
    let _ = tx.sequence(b);
    let mut nested = Vec::new();
    let mut keys = Vec::new();
    {
        let mut c = tx.cursor(b);
        let mut e = c.first()?;
        while let Some((k, v)) = e {
            if *budget == 0 {
                return Ok(());
            }
            *budget -= 1;
            match v {
                None => nested.push(k.to_vec()),
                Some(_) if keys.len() < 32 => keys.push(k.to_vec()),
                Some(_) => {}
            }
            e = c.next()?;
        }
        let mut e = c.last()?;
        while e.is_some() {
            if *budget == 0 {
                return Ok(());
            }
            *budget -= 1;
            e = c.prev()?;
        }
    }
    for k in &keys {
        let _ = tx.get(b, k);
        let mut c = tx.cursor(b);
        let _ = c.seek(k);
        let _ = c.next();
        let _ = c.prev();
    }
    let _ = tx.get(b, b"");
    let _ = tx.cursor(b).seek(&[0xFF; 40]);
    for name in nested {
        if let Some(child) = tx.bucket(b, &name)? {
            walk(tx, child, depth + 1, budget)?;
        }
    }
    Ok(())
}

/// One way to damage the file.
#[derive(Debug, Clone)]
enum Damage {
    /// XOR one byte anywhere.
    Flip { at: Index, mask: u8 },
    /// Set a 2-, 4- or 8-byte little-endian word in a page's header or first elements.
    Word {
        page: Index,
        off: usize,
        width: usize,
        value: u64,
    },
    /// Change a field of a meta and write it back with a valid checksum.
    Meta { which: u64, field: u8, value: u64 },
    /// Copy one page over another.
    CopyPage { from: Index, to: Index },
    /// Cut the file short.
    Truncate { at: Index },
}

/// Values that mean something to a decoder: small ids, the page count and around it, the
/// largest counts and offsets.
fn telling_value() -> impl Strategy<Value = u64> {
    let pages = (base_image().len() / PS) as u64;
    prop_oneof![
        0..8u64,
        (pages - 2..pages + 3),
        Just(0xFF),
        Just(0xFFFF),
        Just(0x1_0000),
        Just(PS as u64),
        Just(u64::from(u32::MAX)),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        any::<u64>(),
    ]
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => (any::<Index>(), 1..=255u8).prop_map(|(at, mask)| Damage::Flip { at, mask }),
        4 => (any::<Index>(), 0..80usize, prop_oneof![Just(2usize), Just(4), Just(8)], telling_value())
            .prop_map(|(page, off, width, value)| Damage::Word { page, off, width, value }),
        2 => (0..2u64, 0..6u8, telling_value())
            .prop_map(|(which, field, value)| Damage::Meta { which, field, value }),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(from, to)| Damage::CopyPage { from, to }),
        1 => any::<Index>().prop_map(|at| Damage::Truncate { at }),
    ]
}

fn apply(img: &mut Vec<u8>, d: &Damage) {
    if img.is_empty() {
        return;
    }
    let pages = img.len().div_ceil(PS);
    match d {
        Damage::Flip { at, mask } => {
            let i = at.index(img.len());
            img[i] ^= mask;
        }
        Damage::Word {
            page,
            off,
            width,
            value,
        } => {
            let at = page.index(pages) * PS + off;
            let bytes = value.to_le_bytes();
            for (i, b) in bytes[..*width].iter().enumerate() {
                if let Some(x) = img.get_mut(at + i) {
                    *x = *b;
                }
            }
        }
        Damage::Meta {
            which,
            field,
            value,
        } => {
            let at = *which as usize * PS;
            let Some(page) = img.get(at..at + PS) else {
                return;
            };
            let Ok(mut m) = Meta::decode(page, *which) else {
                return;
            };
            match field {
                0 => m.root.root = *value,
                1 => m.freelist = *value,
                2 => m.pgid = *value,
                3 => m.txid = *value,
                4 => m.root.sequence = *value,
                _ => m.flags = *value as u32,
            }
            img[at..at + PS].copy_from_slice(&m.encode());
        }
        Damage::CopyPage { from, to } => {
            let (f, t) = (from.index(pages) * PS, to.index(pages) * PS);
            if f + PS <= img.len() && t + PS <= img.len() {
                let page = img[f..f + PS].to_vec();
                img[t..t + PS].copy_from_slice(&page);
            }
        }
        Damage::Truncate { at } => {
            let len = at.index(img.len());
            img.truncate(len);
        }
    }
}

// ---- crafted damage: page cycles -------------------------------------------------------------

fn u64_at(img: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(img[at..at + 8].try_into().unwrap())
}

fn u32_at(img: &[u8], at: usize) -> usize {
    u32::from_le_bytes(img[at..at + 4].try_into().unwrap()) as usize
}

/// The root page of the bucket tree, from the meta with the larger txid.
fn root_page(img: &[u8]) -> u64 {
    let meta = if u64_at(img, 16 + 48) > u64_at(img, PS + 16 + 48) {
        0
    } else {
        PS
    };
    u64_at(img, meta + 16 + 16)
}

/// Where the value of leaf entry `key` on page `page` starts (the file offset), if present.
fn leaf_value_at(img: &[u8], page: u64, key: &[u8]) -> Option<usize> {
    let p = page as usize * PS;
    assert_eq!(img[p + 8], 0x02, "page {page} is not a leaf");
    let count = usize::from(u16::from_le_bytes([img[p + 10], img[p + 11]]));
    (0..count).find_map(|i| {
        let e = p + 16 + i * 16;
        let (pos, ksize) = (u32_at(img, e + 4), u32_at(img, e + 8));
        (&img[e + pos..e + pos + ksize] == key).then_some(e + pos + ksize)
    })
}

/// The root page of top-level bucket `name` (a bucket value starts with its root page id).
fn bucket_root(img: &[u8], name: &[u8]) -> u64 {
    u64_at(img, leaf_value_at(img, root_page(img), name).unwrap())
}

/// A branch page whose first child is itself: every recursive walk over pages must be
/// bounded (`file_stats` once recursed until the stack overflowed, aborting the process).
fn branch_cycle_image() -> Vec<u8> {
    let mut img = base_image().to_vec();
    let key_root = bucket_root(&img, b"key");
    let p = key_root as usize * PS;
    assert_eq!(img[p + 8], 0x01, "the key bucket's root is a branch page");
    img[p + 16 + 8..p + 16 + 16].copy_from_slice(&key_root.to_le_bytes());
    img
}

/// A nested bucket whose root is its parent's root page, so that it contains itself:
/// recursing into nested buckets must be bounded (`dump` once recursed until the stack
/// overflowed).
fn bucket_cycle_image() -> Vec<u8> {
    let mut img = base_image().to_vec();
    let meta_root = bucket_root(&img, b"meta");
    let at = leaf_value_at(&img, meta_root, b"nested").unwrap();
    img[at..at + 8].copy_from_slice(&meta_root.to_le_bytes());
    img
}

#[test]
fn page_cycles_are_errors_not_stack_overflows() {
    for (name, img) in [
        ("branch cycle", branch_cycle_image()),
        ("bucket cycle", bucket_cycle_image()),
    ] {
        let out = exercise(img.clone());
        assert!(out.opened && !out.check_ok, "{name}: {out:?}");
        let db = Db::open_backend(Arc::new(MemFile::from_bytes(img)), read_only()).unwrap();
        let mut tx = db.begin_read().unwrap();
        let report = check(&tx, db.raw_metas());
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("multiple references")),
            "{name}: {report:?}"
        );
        let mut lines = 0;
        let dumped = dump(&mut tx, &mut |_| {
            lines += 1;
            Ok(())
        });
        let stats = file_stats(&mut tx);
        match name {
            "branch cycle" => assert!(stats.is_err(), "{name}"),
            _ => assert!(dumped.is_err(), "{name}"),
        }
    }
}

/// Damage that only shows when writing is refused with a message, and leaves the file usable
/// for reading.
#[test]
fn writing_on_an_impossible_freelist_or_txid_is_refused() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let options = || Options {
        no_sync: true,
        ..Options::default()
    };
    let open = |name: &str, options: Options| {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        Db::open_backend(Arc::new(MemFile::from_bytes(bytes)), options)
    };
    let e = open("rw-freelist-id-beyond-high-water-oom.bin", options()).unwrap_err();
    assert!(e.to_string().contains("beyond the high-water mark"), "{e}");
    assert!(open("rw-freelist-id-beyond-high-water-oom.bin", read_only()).is_ok());

    let db = open("rw-meta-txid-max-overflow.bin", options()).unwrap();
    for _ in 0..2 {
        // Refused each time: the write lock is given back, not lost.
        let e = db.begin_write().unwrap_err();
        assert!(e.to_string().contains("no next txid"), "{e}");
    }
    assert!(db.begin_read().is_ok());
}

/// Files the fuzzer (or this suite) once crashed on, kept as they were found: reading
/// (`dump-*`, `file_stats-*`: unbounded recursion over a page cycle) and writing (`rw-*`: a
/// freed page id far past the end of the file, a meta txid with no next one).
#[test]
fn saved_regressions_give_errors_not_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "bin") {
            let bytes = std::fs::read(&path).unwrap();
            exercise(bytes.clone());
            exercise_writes(bytes);
            n += 1;
        }
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
}

#[test]
fn the_intact_file_passes_everything() {
    assert_eq!(exercise_writes(base_image().to_vec()), 3);
    let out = exercise(base_image().to_vec());
    assert!(out.opened && out.check_ok, "{out:?}");
    // 400 - 134 deleted keys, 3 in meta, 61 nested, 1 lease, 1 last.
    assert_eq!(out.dumped, 266 + 2 + 61 + 1 + 1);
    assert!(out.walked >= 2 * out.dumped, "{out:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random damage anywhere in a valid file: errors, never a panic.
    #[test]
    fn damaged_files_give_errors_not_panics(damages in prop::collection::vec(damage(), 1..6)) {
        let mut img = base_image().to_vec();
        for d in &damages {
            apply(&mut img, d);
        }
        exercise(img);
    }

    /// The same damage, opened for writing and written on.
    #[test]
    fn damaged_files_written_on_give_errors_not_panics(damages in prop::collection::vec(damage(), 1..6)) {
        let mut img = base_image().to_vec();
        for d in &damages {
            apply(&mut img, d);
        }
        exercise_writes(img);
    }

    /// Arbitrary bytes of arbitrary length (mostly refused at the metas).
    #[test]
    fn arbitrary_bytes_give_errors_not_panics(bytes in prop::collection::vec(any::<u8>(), 0..8192)) {
        exercise(bytes);
    }
}

// ---- fixed cases, on real files --------------------------------------------------------------

fn glass_file(path: &Path, page_size: u32) {
    let db = Db::open(
        path,
        Options {
            page_size: Some(page_size),
            ..Options::default()
        },
    )
    .unwrap();
    fill(&db);
}

fn open_err(path: &Path, options: Options) -> Error {
    match Db::open(path, options) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e,
    }
}

#[test]
fn a_file_of_random_bytes_is_not_bbolt() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for (name, bytes) in [
        ("random", (0..16384).map(|_| rng.gen()).collect::<Vec<u8>>()),
        ("zeros", vec![0u8; 16384]),
        ("short", b"hello, world".to_vec()),
        ("empty", Vec::new()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let e = open_err(&path, read_only());
        assert!(matches!(e, Error::NotBolt(_)), "{name}: {e:?}");
        assert!(e.to_string().contains("not a bbolt"), "{name}: {e}");
        if name != "empty" {
            // Opening for writing refuses it too (and does not overwrite it).
            let e = open_err(&path, Options::default());
            assert!(e.to_string().contains("not a bbolt"), "{name}: {e}");
            assert_eq!(std::fs::read(&path).unwrap(), bytes);
        }
        let report = check_path(&path);
        assert!(!report.ok());
        assert!(report.problems[0].contains("not a bbolt"), "{report:?}");
    }
}

#[test]
fn a_truncated_file_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.db");
    glass_file(&path, 4096);
    assert!(std::fs::metadata(&path).unwrap().len() > 3 * 4096);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(3 * 4096).unwrap();
    drop(f);
    for options in [read_only(), Options::default()] {
        let e = open_err(&path, options);
        assert!(matches!(e, Error::NotBolt(_)), "{e:?}");
        assert!(e.to_string().contains("truncated"), "{e}");
    }
    let report = check_path(&path);
    assert!(report.problems[0].contains("truncated"), "{report:?}");
}

#[test]
fn another_page_size_is_refused_when_one_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("8k.db");
    glass_file(&path, 8192);
    let e = open_err(
        &path,
        Options {
            page_size: Some(4096),
            ..Options::default()
        },
    );
    assert!(
        matches!(
            e,
            Error::PageSizeMismatch {
                file: 8192,
                expected: 4096
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("page size mismatch"), "{e}");
    assert!(e.to_string().contains("8192"), "{e}");
    // Without a requirement, or with the right one, it opens.
    for page_size in [None, Some(8192)] {
        let db = Db::open(
            &path,
            Options {
                page_size,
                read_only: true,
                ..Options::default()
            },
        )
        .unwrap();
        assert_eq!(db.page_size(), 8192);
    }
    assert!(check_path(&path).ok());
}

fn flip(path: &Path, off: u64, mask: u8) {
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

/// The txid the file opens at, and whether it holds the last commit's bucket.
fn txid_and_last(path: &Path) -> (u64, bool) {
    let db = Db::open(path, read_only()).unwrap();
    let mut tx = db.begin_read().unwrap();
    let root = tx.root();
    let last = tx.bucket(root, b"last").unwrap().is_some();
    // What the older state holds is all there.
    let key = tx.bucket(root, b"key").unwrap().unwrap();
    assert_eq!(
        tx.get(key, &1u32.to_be_bytes()).unwrap(),
        Some(&[1u8; 20][..])
    );
    (tx.id(), last)
}

#[test]
fn one_damaged_meta_falls_back_to_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let ps = 4096u64;
    let base = dir.path().join("base.db");
    glass_file(&base, ps as u32);
    let (txid, last) = txid_and_last(&base);
    assert!(last);
    // Four commits on a fresh file (txids 0 and 1 are the initial metas).
    assert_eq!(txid, 5);
    let newest = txid % 2;
    assert!(check_path(&base).warnings.is_empty());

    // The newest meta damaged (a bit of its root field): the file opens at the commit
    // before, without the last bucket; check calls it consistent and warns.
    let path = dir.path().join("newest.db");
    std::fs::copy(&base, &path).unwrap();
    flip(&path, newest * ps + 16 + 16, 0x04);
    assert_eq!(txid_and_last(&path), (txid - 1, false));
    let report = check_path(&path);
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.warnings.len(), 1, "{report:?}");
    assert!(
        report.warnings[0].contains(&format!("meta page {newest}")),
        "{report:?}"
    );
    assert!(report.warnings[0].contains("checksum"), "{report:?}");
    // Writing on repairs it: the next commit rewrites the damaged meta page.
    {
        let db = Db::open(&path, Options::default()).unwrap();
        db.update(|tx| {
            let root = tx.root();
            let b = tx.create_bucket(root, b"after")?;
            tx.put(b, b"k", b"v")
        })
        .unwrap();
    }
    let report = check_path(&path);
    assert!(report.ok() && report.warnings.is_empty(), "{report:?}");
    assert_eq!(txid_and_last(&path), (txid, false));

    // The older meta damaged: the newest is used, nothing is lost.
    let path = dir.path().join("older.db");
    std::fs::copy(&base, &path).unwrap();
    flip(&path, (1 - newest) * ps + 16 + 40, 0x01);
    assert_eq!(txid_and_last(&path), (txid, true));
    let report = check_path(&path);
    assert!(report.ok(), "{report:?}");
    assert!(
        report.warnings[0].contains(&format!("meta page {}", 1 - newest)),
        "{report:?}"
    );
}

#[test]
fn both_metas_damaged_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let ps = 4096u64;
    let path = dir.path().join("both.db");
    glass_file(&path, ps as u32);
    flip(&path, 16 + 16, 0x04);
    flip(&path, ps + 16 + 16, 0x04);
    for options in [read_only(), Options::default()] {
        let e = open_err(&path, options);
        assert!(matches!(e, Error::NotBolt(_)), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("no valid meta page"), "{msg}");
        assert!(msg.contains("checksum"), "{msg}");
    }
    assert!(!check_path(&path).ok());
}

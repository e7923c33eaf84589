//! Page decoding under arbitrary input: whatever the bytes, opening, `check`, `dump` and a
//! cursor walk of every bucket return errors — never a panic, an abort or a hang.
//!
//! Input: the first byte picks the mode, the rest is its data.
//! - bit 0 clear: the rest is a whole database file;
//! - bit 0 set: the rest is a list of 5-byte patches (u32 LE offset modulo the file length,
//!   then a byte to XOR in) applied to a small valid file written by Glass (1 KiB pages, four
//!   commits: branch pages, nested, inline and deleted buckets, overflow values, free pages),
//!   so that the fuzzer starts inside the format instead of at the meta checksums; with bit 1
//!   also set, both metas get their checksums recomputed after patching, so that damaged meta
//!   fields (root, freelist, high-water mark, txid) get past the checksum too;
//! - bit 2 set (either mode): the file is also opened for writing and written on.

#![no_main]

use std::sync::{Arc, OnceLock};

use glassd::storage::btree::{
    check, dump, file_stats, BucketId, Db, Error, MemFile, Options, Tx,
};
use libfuzzer_sys::fuzz_target;
use telemetry::Metrics;

const PS: usize = 1024;
/// Bound on the entries a walk or a dump visits (a damaged tree can repeat pages).
const STEPS: usize = 5_000;

fn metrics() -> Arc<Metrics> {
    static METRICS: OnceLock<Arc<Metrics>> = OnceLock::new();
    METRICS.get_or_init(|| Arc::new(Metrics::new())).clone()
}

fn base_image() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let file = MemFile::new();
        let db = Db::open_backend(
            Arc::new(file.clone()),
            Options {
                page_size: Some(PS as u32),
                no_sync: true,
                metrics: metrics(),
                ..Options::default()
            },
        )
        .expect("create the base file");
        db.update(|tx| {
            let root = tx.root();
            let key = tx.create_bucket(root, b"key")?;
            for i in 0..200u32 {
                tx.put(key, &i.to_be_bytes(), &[i as u8; 20])?;
            }
            let meta = tx.create_bucket(root, b"meta")?;
            tx.put(meta, b"big", &[0xAB; 3000])?;
            let nested = tx.create_bucket(meta, b"nested")?;
            for i in 0..40u32 {
                tx.put(nested, &i.to_le_bytes(), b"nested value")?;
            }
            let lease = tx.create_bucket(root, b"lease")?;
            tx.put(lease, b"inline", b"small")
        })
        .expect("first commit");
        db.update(|tx| {
            let root = tx.root();
            let key = tx.bucket(root, b"key")?.ok_or(Error::BucketNotFound)?;
            for i in (0..200u32).step_by(3) {
                tx.delete(key, &i.to_be_bytes())?;
            }
            let gone = tx.create_bucket(root, b"gone")?;
            tx.put(gone, b"k", &[2u8; 1500])
        })
        .expect("second commit");
        db.update(|tx| {
            let root = tx.root();
            tx.delete_bucket(root, b"gone")
        })
        .expect("third commit");
        db.update(|tx| {
            let root = tx.root();
            let last = tx.create_bucket(root, b"last")?;
            tx.put(last, b"k", b"v")
        })
        .expect("fourth commit");
        drop(db);
        file.written_image()
    })
}

/// 64-bit FNV-1a, bbolt's meta checksum.
fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Rewrites the checksum of both meta pages (bytes 16..72 of the page, stored at 72).
fn resign_metas(img: &mut [u8]) {
    for page in 0..2 {
        let m = page * PS + 16;
        if let Some(body) = img.get(m..m + 56) {
            let sum = fnv1a64(body).to_le_bytes();
            img[m + 56..m + 64].copy_from_slice(&sum);
        }
    }
}

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
                Some(_) if keys.len() < 16 => keys.push(k.to_vec()),
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
        let _ = c.prev();
    }
    for name in nested {
        if let Some(child) = tx.bucket(b, &name)? {
            walk(tx, child, depth + 1, budget)?;
        }
    }
    Ok(())
}

fn read(bytes: Vec<u8>) {
    let options = Options {
        read_only: true,
        metrics: metrics(),
        ..Options::default()
    };
    let Ok(db) = Db::open_backend(Arc::new(MemFile::from_bytes(bytes)), options) else {
        return;
    };
    let _ = db.stats();
    let metas = db.raw_metas();
    let Ok(mut tx) = db.begin_read() else {
        return;
    };
    let _ = check(&tx, metas);
    let mut lines = 0;
    let _ = dump(&mut tx, &mut |_line| {
        lines += 1;
        if lines > STEPS {
            Err(std::io::Error::other("enough"))
        } else {
            Ok(())
        }
    });
    let _ = file_stats(&mut tx);
    let mut budget = STEPS;
    let root = tx.root();
    let _ = walk(&mut tx, root, 0, &mut budget);
}

fn write(bytes: Vec<u8>) {
    let options = Options {
        no_sync: true,
        metrics: metrics(),
        ..Options::default()
    };
    let Ok(db) = Db::open_backend(Arc::new(MemFile::from_bytes(bytes)), options) else {
        return;
    };
    for round in 0..2u32 {
        let Ok(mut tx) = db.begin_write() else {
            return;
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
                        for i in 0..20u32 {
                            tx.put(b, &(i * 7 + round).to_be_bytes(), &[3u8; 100])?;
                            tx.delete(b, &(i * 3).to_be_bytes())?;
                        }
                    }
                }
                let b = tx.create_bucket_if_not_exists(root, b"new")?;
                tx.put(b, &round.to_be_bytes(), &[1u8; 2000])
            });
        if written.is_err() || tx.commit().is_err() {
            return;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let img = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let mut img = base_image().to_vec();
        for patch in rest.chunks_exact(5) {
            let off = u32::from_le_bytes([patch[0], patch[1], patch[2], patch[3]]) as usize;
            let at = off % img.len();
            img[at] ^= patch[4];
        }
        if mode & 2 != 0 {
            resign_metas(&mut img);
        }
        img
    };
    if mode & 4 != 0 {
        write(img.clone());
    }
    read(img);
});

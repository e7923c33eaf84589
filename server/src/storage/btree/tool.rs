//! `glassd bolt compact` and `glassd bolt bench`: whole-file jobs built on the public API.

use std::path::Path;

use rand::{RngCore, SeedableRng};

use super::{BucketId, Db, Error, Options, Result, Tx};

/// Commit the copy every this many bytes, so a huge source never needs one huge tx.
const COMPACT_TX_BYTES: usize = 64 << 20;

/// Copies every bucket of `src` into a fresh file `dst` through Glass's own write path;
/// returns (source bytes, destination bytes).
pub fn compact(src: &Path, dst: &Path, options: Options) -> Result<(u64, u64)> {
    let from = Db::open(
        src,
        Options {
            read_only: true,
            ..options.clone()
        },
    )?;
    if dst.exists() {
        std::fs::remove_file(dst).map_err(|source| Error::Io {
            op: "remove",
            path: dst.to_path_buf(),
            source,
        })?;
    }
    let to = Db::open(dst, options)?;
    let mut rtx = from.begin_read()?;
    let mut copier = Copier {
        to: &to,
        wtx: Some(to.begin_write()?),
        pending: 0,
    };
    let root = rtx.root();
    copy_bucket(&mut rtx, root, &mut Vec::new(), &mut copier)?;
    if let Some(tx) = copier.wtx.take() {
        tx.commit()?;
    }
    let src_size = std::fs::metadata(src).map(|m| m.len()).unwrap_or(0);
    let dst_size = std::fs::metadata(dst).map(|m| m.len()).unwrap_or(0);
    Ok((src_size, dst_size))
}

struct Copier<'a> {
    to: &'a Db,
    wtx: Option<Tx>,
    pending: usize,
}

impl Copier<'_> {
    fn tx(&mut self) -> Result<&mut Tx> {
        self.wtx.as_mut().ok_or(Error::Closed)
    }

    /// Opens (creating) the bucket at `path` in the current write tx.
    fn bucket(&mut self, path: &[Vec<u8>]) -> Result<BucketId> {
        let tx = self.tx()?;
        let mut b = tx.root();
        for name in path {
            b = tx.create_bucket_if_not_exists(b, name)?;
        }
        Ok(b)
    }

    fn put(&mut self, path: &[Vec<u8>], k: &[u8], v: &[u8]) -> Result<()> {
        let b = self.bucket(path)?;
        self.tx()?.put(b, k, v)?;
        self.pending += k.len() + v.len();
        if self.pending >= COMPACT_TX_BYTES {
            if let Some(tx) = self.wtx.take() {
                tx.commit()?;
            }
            self.wtx = Some(self.to.begin_write()?);
            self.pending = 0;
        }
        Ok(())
    }
}

fn copy_bucket(
    rtx: &mut Tx,
    b: BucketId,
    path: &mut Vec<Vec<u8>>,
    to: &mut Copier<'_>,
) -> Result<()> {
    if !path.is_empty() {
        let seq = rtx.sequence(b)?;
        let nb = to.bucket(path)?;
        to.tx()?.set_sequence(nb, seq)?;
    }
    // Plain entries first; nested buckets after (they need the read tx mutably).
    let mut nested = Vec::new();
    {
        let mut c = rtx.cursor(b);
        let mut e = c.first()?;
        while let Some((k, v)) = e {
            match v {
                Some(v) => to.put(path, k, v)?,
                None => nested.push(k.to_vec()),
            }
            e = c.next()?;
        }
    }
    for name in nested {
        if let Some(child) = rtx.bucket(b, &name)? {
            path.push(name);
            copy_bucket(rtx, child, path, to)?;
            path.pop();
        }
    }
    Ok(())
}

/// One operation of a bench phase: (tx, bucket, index, keys).
type BenchOp<'a> = dyn Fn(&mut Tx, BucketId, usize, &[Vec<u8>]) -> Result<()> + 'a;

/// One phase of the bench: its name, operations and seconds.
#[derive(Debug, Clone)]
pub struct BenchPhase {
    pub name: &'static str,
    pub ops: u64,
    pub seconds: f64,
}

impl BenchPhase {
    /// The line `boltcheck bench` prints: `PHASE OPS_PER_S SECONDS`.
    pub fn line(&self) -> String {
        format!(
            "{} {:.0} {:.3}",
            self.name,
            self.ops as f64 / self.seconds.max(1e-9),
            self.seconds
        )
    }
}

/// `boltcheck bench`'s workload: insert `n` random 32-byte keys in txs of `batch`, delete every
/// other one, insert `n/2` more, then read the keys at odd positions in one read tx.
pub fn bench(
    path: &Path,
    n: usize,
    batch: usize,
    value_size: usize,
    options: Options,
    mut report: impl FnMut(&BenchPhase),
) -> Result<Vec<BenchPhase>> {
    let _ = std::fs::remove_file(path);
    let db = Db::open(path, options)?;
    let batch = batch.max(1);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    let mut key = || {
        let mut k = vec![0u8; 32];
        rng.fill_bytes(&mut k);
        k
    };
    let mut keys: Vec<Vec<u8>> = (0..n).map(|_| key()).collect();
    let mut val = vec![0u8; value_size];
    rand::rngs::SmallRng::seed_from_u64(2).fill_bytes(&mut val);
    let mut phases = Vec::new();

    let run = |name: &'static str,
               ops: usize,
               from: usize,
               to: usize,
               keys: &[Vec<u8>],
               f: &BenchOp<'_>|
     -> Result<BenchPhase> {
        let start = telemetry::Timer::start();
        let mut lo = from;
        while lo < to {
            let hi = (lo + batch).min(to);
            let mut tx = db.begin_write()?;
            let root = tx.root();
            let b = tx.create_bucket_if_not_exists(root, b"key")?;
            for i in lo..hi {
                f(&mut tx, b, i, keys)?;
            }
            tx.commit()?;
            lo = hi;
        }
        Ok(BenchPhase {
            name,
            ops: ops as u64,
            seconds: start.elapsed().as_secs_f64(),
        })
    };
    let put = |tx: &mut Tx, b: BucketId, i: usize, keys: &[Vec<u8>]| tx.put(b, &keys[i], &val);
    let p = run("insert", n, 0, n, &keys, &put)?;
    report(&p);
    phases.push(p);
    let del = |tx: &mut Tx, b: BucketId, i: usize, keys: &[Vec<u8>]| {
        if i % 2 == 0 {
            tx.delete(b, &keys[i])
        } else {
            Ok(())
        }
    };
    let p = run("delete", n / 2, 0, n, &keys, &del)?;
    report(&p);
    phases.push(p);
    for _ in 0..n / 2 {
        keys.push(key());
    }
    let p = run("reinsert", n / 2, n, n + n / 2, &keys, &put)?;
    report(&p);
    phases.push(p);

    let start = telemetry::Timer::start();
    let mut found = 0u64;
    {
        let mut tx = db.begin_read()?;
        let root = tx.root();
        if let Some(b) = tx.bucket(root, b"key")? {
            let mut i = 1;
            while i < keys.len() {
                if tx.get(b, &keys[i])?.is_some() {
                    found += 1;
                }
                i += 2;
            }
        }
    }
    let p = BenchPhase {
        name: "read",
        ops: found,
        seconds: start.elapsed().as_secs_f64(),
    };
    report(&p);
    phases.push(p);
    Ok(phases)
}

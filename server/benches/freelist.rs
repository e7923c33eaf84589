//! Freelist allocate + release cost as the free set grows, for both algorithms.
//!
//! The free set is fragmented the way a long-lived etcd data file gets: every other page free
//! (runs of one page), plus a few 8-page runs at the top of the file. One iteration is what a
//! writer does with the pages: allocate a run of `n`, free it, and release it back into the free
//! set, so the set returns to the same state and every iteration costs the same.
//!
//! - `n = 1` is served by any single free page: both algorithms should be flat.
//! - `n = 2` fits only the 8-page runs at the far end: the array scans every free id (linear in
//!   the free pages), the map finds the smallest fitting run by size (flat).
//!
//! Run with `cargo bench --bench freelist`; the whole run takes about a minute.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use glassd::storage::btree::freelist::{Freelist, FreelistType};
use telemetry::Metrics;

/// Long runs placed above the fragmented region.
const LONG_RUNS: u64 = 4;
const LONG_RUN_PAGES: u64 = 8;

/// `free_pages` single free pages (every other id from 2), then the long runs.
fn fragmented(kind: FreelistType, free_pages: u64) -> Freelist {
    let singles = free_pages - LONG_RUNS * LONG_RUN_PAGES;
    let mut ids: Vec<u64> = (0..singles).map(|i| 2 + 2 * i).collect();
    let mut next = 2 + 2 * singles + 1;
    for _ in 0..LONG_RUNS {
        ids.extend(next..next + LONG_RUN_PAGES);
        next += LONG_RUN_PAGES + 1;
    }
    let mut f = Freelist::new(kind, Arc::new(Metrics::new()));
    f.read_ids(&ids);
    f
}

fn allocate_release(c: &mut Criterion) {
    let mut group = c.benchmark_group("freelist_allocate_release");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for n in [1usize, 2] {
        for free_pages in [10_000u64, 100_000, 1_000_000] {
            for kind in [FreelistType::Array, FreelistType::Map] {
                let mut f = fragmented(kind, free_pages);
                let mut txid = 2;
                let id = BenchmarkId::new(format!("{kind}/n={n}"), free_pages);
                group.bench_function(id, |b| {
                    b.iter(|| {
                        txid += 1;
                        let start = f.allocate(txid, n).expect("the free set has a fitting run");
                        f.free(txid, start, n as u32 - 1, false)
                            .expect("just allocated");
                        f.release(txid);
                        start
                    })
                });
                assert_eq!(
                    f.free_count() as u64,
                    free_pages,
                    "the set returns to its size"
                );
            }
        }
    }
    group.finish();
}

criterion_group!(benches, allocate_release);
criterion_main!(benches);

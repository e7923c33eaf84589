//! The freelist: which pages of the data file may be reused, and when.
//!
//! # Contract
//! - A page freed by tx `T` ([`Freelist::free`]) becomes *pending*: readers older than `T` may
//!   still see it. It joins the *free set* only when the engine proves no reader can
//!   ([`Freelist::release`], [`Freelist::release_range`]), and only free-set pages are handed
//!   out by [`Freelist::allocate`].
//! - Every page id is in at most one place: in use, pending (under exactly one txid), or free.
//!   Freeing a page that is already free or pending is [`FreelistError::DoubleFree`] and changes
//!   nothing; pages 0 and 1 (the meta pages) can never be freed or allocated.
//! - [`Freelist::rollback`] puts the freelist back exactly as it was before the tx began: its
//!   frees are undone and every run it took from the free set is given back.
//! - What the freelist page on disk stores is [`Freelist::all_ids`] (free ∪ pending), exactly
//!   as bbolt writes it: a reopened file treats pending pages as free, because no reader of the
//!   previous process survives.
//!
//! Two algorithms keep the free set, behind the [`FreeSet`] trait, as in bbolt: the original
//! sorted array (`--backend-bbolt-freelist-type=array`) and the segregated "hashmap" (`map`, the
//! default). Everything else (pending pages, which tx allocated what, double-free detection,
//! instrumentation) is shared in [`Freelist`], so switching algorithm ([`Freelist::set_kind`])
//! changes nothing observable except which run an allocation picks.
//!
//! # Layout
//! - `mod.rs` — [`Freelist`] (shared bookkeeping and measurements), the [`FreeSet`] trait,
//!   [`FreelistType`], [`FreelistError`], and the one test suite both algorithms must pass;
//! - `array.rs` — bbolt's original free set: one sorted vector, allocation by linear scan;
//! - `hashmap.rs` — bbolt's segregated free set: maximal runs indexed by size, start and end;
//! - `pending.rs` — pages freed per txid, waiting for the readers that may see them.

mod array;
mod hashmap;
mod pending;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use telemetry::{names, Metrics, Timer};

use super::{Pgid, Txid};
use array::ArraySet;
use hashmap::MapSet;
use pending::{AllocOrigin, Pending, PendingPage};

/// Which free-set algorithm a [`Freelist`] uses (etcd's `--backend-bbolt-freelist-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum FreelistType {
    /// bbolt's original sorted array: O(free pages) allocation.
    Array,
    /// bbolt's segregated "hashmap" freelist: O(log) allocation and release.
    #[default]
    Map,
}

impl FreelistType {
    /// The name used in flags, config files and the `algorithm` span field.
    pub fn as_str(&self) -> &'static str {
        match self {
            FreelistType::Array => "array",
            FreelistType::Map => "map",
        }
    }

    /// An empty free set of this kind.
    fn new_set(self) -> Box<dyn FreeSet> {
        match self {
            FreelistType::Array => Box::new(ArraySet::new()),
            FreelistType::Map => Box::new(MapSet::new()),
        }
    }
}

impl fmt::Display for FreelistType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FreelistType {
    type Err = String;

    /// Accepts `array`, `map` and bbolt's own name for the map, `hashmap` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "array" => Ok(FreelistType::Array),
            "map" | "hashmap" => Ok(FreelistType::Map),
            _ => Err(format!(
                "unknown freelist type {s:?}: expected \"array\" or \"map\" (or \"hashmap\")"
            )),
        }
    }
}

/// Errors of the freelist layer. Both are engine bugs (bbolt panics on them); they are returned
/// so the engine can refuse to commit instead of corrupting the file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FreelistError {
    #[error("page {0} freed twice")]
    DoubleFree(Pgid),
    #[error("page {0} is a meta page and cannot be freed")]
    Reserved(Pgid),
    /// Found by [`Freelist::check`]: the internal indexes disagree.
    #[error("freelist inconsistent: {0}")]
    Inconsistent(String),
}

/// Run statistics of the free set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunStats {
    /// Free pages (pending pages not included).
    pub free_pages: u64,
    /// Maximal runs of consecutive free ids.
    pub runs: u64,
    /// Length of the longest run: the largest allocation the free set can serve.
    pub longest: u64,
}

/// The free set (free pages only, no pending): two implementations, one shared test suite.
///
/// Callers guarantee the preconditions stated on each method; [`Freelist`] is the only caller
/// and upholds them through its `cache` of every free or pending id.
pub trait FreeSet: Send + Sync + fmt::Debug {
    /// Which algorithm this is.
    fn kind(&self) -> FreelistType;
    /// Replaces the content. `ids` are sorted ascending, unique, and all `> 1`.
    fn init(&mut self, ids: &[Pgid]);
    /// The start of a run of `n` consecutive free ids, removed from the set; `None` if there is
    /// no such run or `n == 0`. Never returns a run that is not entirely free.
    fn allocate(&mut self, n: usize) -> Option<Pgid>;
    /// Number of free ids.
    fn free_count(&self) -> usize;
    /// Adds `ids` (sorted ascending, unique, none already in the set, all `> 1`), joining them
    /// with neighbouring runs.
    fn merge(&mut self, ids: &[Pgid]);
    /// All free ids, sorted ascending.
    fn ids(&self) -> Vec<Pgid>;
    /// Run statistics.
    fn runs(&self) -> RunStats;
    /// Verifies internal invariants (for tests and the engine's consistency check); O(n).
    fn check(&self) -> Result<(), String>;
}

/// The runs the current writer took from the free set, so a rollback can hand them back.
/// bbolt has one writer at a time, so only the latest writer's runs are kept: an allocation by
/// another txid means the previous writer has finished (committed or already rolled back).
#[derive(Debug)]
struct TxRuns {
    txid: Txid,
    /// `(start, pages)` in allocation order.
    runs: Vec<(Pgid, u64)>,
}

/// The freelist of one data file: a [`FreeSet`] plus the bookkeeping bbolt shares between its
/// algorithms.
pub struct Freelist {
    set: Box<dyn FreeSet>,
    pending: Pending,
    /// The tx that allocated each in-use run, keyed by the run's first page (bbolt's `allocs`).
    /// `free` moves it into the pending entry so `release_range` can tell whether any reader
    /// could have seen the page.
    allocs: PgidMap<Txid>,
    /// Every free or pending id (bbolt's `cache`): double-free detection and `freed` in O(1),
    /// whatever the free set's algorithm.
    cache: PgidSet,
    /// The current writer's allocations from the free set (see [`TxRuns`]).
    tx_runs: Option<TxRuns>,
    /// Injected, never global: several members may share a process in tests.
    metrics: Arc<Metrics>,
}

impl fmt::Debug for Freelist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Freelist")
            .field("kind", &self.kind())
            .field("runs", &self.runs())
            .field("pending", &self.pending.count())
            .field("allocs", &self.allocs.len())
            .finish()
    }
}

impl Freelist {
    /// An empty freelist using algorithm `kind`, recording to `metrics`.
    pub fn new(kind: FreelistType, metrics: Arc<Metrics>) -> Self {
        Freelist {
            set: kind.new_set(),
            pending: Pending::default(),
            allocs: PgidMap::default(),
            cache: PgidSet::default(),
            tx_runs: None,
            metrics,
        }
    }

    /// The free-set algorithm in use.
    pub fn kind(&self) -> FreelistType {
        self.set.kind()
    }

    /// Switches algorithm, keeping exactly the same free and pending pages (and everything a
    /// rollback or `release_range` needs).
    pub fn set_kind(&mut self, kind: FreelistType) {
        if kind == self.kind() {
            return;
        }
        let mut set = kind.new_set();
        set.init(&self.set.ids());
        self.set = set;
    }

    /// Loads the ids stored in a freelist page: they all become free. `ids` may be unsorted or
    /// repeated; meta page ids (a corrupt page) are dropped with a warning, so the free set
    /// never holds them. Pending pages and allocation records are cleared: this is a fresh start.
    pub fn read_ids(&mut self, ids: &[Pgid]) {
        let ids = normalize(ids);
        self.set.init(&ids);
        self.pending.clear();
        self.allocs.clear();
        self.tx_runs = None;
        self.cache = ids.into_iter().collect();
    }

    /// bbolt's `reload`: the free set becomes `ids` (the freelist page as last written) minus
    /// every pending id; pending pages are kept. Used after a rollback when the in-memory
    /// freelist may be ahead of the page.
    pub fn reload(&mut self, ids: &[Pgid]) {
        let pending: PgidSet = self.pending.pages().map(|p| p.id).collect();
        let mut ids = normalize(ids);
        ids.retain(|id| !pending.contains(id));
        self.set.init(&ids);
        self.cache = pending;
        self.cache.extend(ids);
    }

    /// The start of `n` consecutive free pages, now owned by `txid`; `None` (a miss: the engine
    /// grows the file) if no run is long enough or `n == 0`.
    pub fn allocate(&mut self, txid: Txid, n: usize) -> Option<Pgid> {
        let timer = Timer::start();
        let span = tracing::debug_span!(
            names::FREELIST_ALLOCATE,
            run = n,
            free_pages = self.set.free_count(),
            algorithm = self.kind().as_str(),
            outcome = tracing::field::Empty,
        );
        let _entered = span.enter();

        let start = self.set.allocate(n);
        match start {
            Some(start) => {
                // The free set only ever receives ids > 1: `read_ids`/`reload` drop meta ids
                // and `free` refuses them.
                debug_assert!(start > 1, "allocated meta page {start}");
                let pages = n as u64;
                for id in start..start + pages {
                    self.cache.remove(&id);
                }
                self.allocs.insert(start, txid);
                match &mut self.tx_runs {
                    Some(tx) if tx.txid == txid => tx.runs.push((start, pages)),
                    other => {
                        *other = Some(TxRuns {
                            txid,
                            runs: vec![(start, pages)],
                        })
                    }
                }
                span.record("outcome", "reused");
            }
            None => {
                self.metrics.freelist_allocate_misses.inc();
                span.record("outcome", "miss");
            }
        }
        let ns = timer.elapsed_ns();
        self.metrics.freelist_allocate.record(ns);
        telemetry::request::record_with(
            names::FREELIST_ALLOCATE,
            &timer,
            ns,
            &[("pages", n as i64)],
        );
        // Which algorithm served it, countable from outside the process (a switch of
        // `--backend-bbolt-freelist-type` while running shows here).
        match self.kind() {
            FreelistType::Array => self.metrics.freelist_allocate_array.inc(),
            FreelistType::Map => self.metrics.freelist_allocate_map.inc(),
        }
        start
    }

    /// Frees page `id` and its `overflow` pages on behalf of `txid`: they become pending.
    /// `is_freelist_page` says the page is the freelist page being replaced; if its allocating
    /// tx is unknown (the file was reopened since), it is taken to be `txid - 1`, since the
    /// freelist page is always written by the tx before the one freeing it.
    pub fn free(
        &mut self,
        txid: Txid,
        id: Pgid,
        overflow: u32,
        is_freelist_page: bool,
    ) -> Result<(), FreelistError> {
        if id <= 1 {
            return Err(FreelistError::Reserved(id));
        }
        // Page ids are bounded by the file size; saturating only keeps the range well formed.
        let last = id.saturating_add(u64::from(overflow));
        if let Some(dup) = (id..=last).find(|p| self.cache.contains(p)) {
            return Err(FreelistError::DoubleFree(dup));
        }
        let (alloc_txid, origin) = match self.allocs.remove(&id) {
            Some(t) => (t, AllocOrigin::Recorded),
            None if is_freelist_page => (txid.saturating_sub(1), AllocOrigin::Inferred),
            None => (0, AllocOrigin::Inferred),
        };
        self.cache.extend(id..=last);
        // Only the first page's allocation was recorded in `allocs`; the overflow pages share
        // its txid, but a rollback must restore one entry, not one per page.
        self.pending.push(
            txid,
            (id..=last).map(|p| PendingPage {
                id: p,
                alloc_txid,
                origin: if p == id {
                    origin
                } else {
                    AllocOrigin::Inferred
                },
            }),
        );
        Ok(())
    }

    /// Moves every page freed by a tx `<= txid` into the free set.
    pub fn release(&mut self, txid: Txid) {
        let ids = self.pending.take_upto(txid);
        self.release_ids(ids);
    }

    /// bbolt's `releaseRange`: pages freed by a tx in `[begin, end]` that were also allocated by
    /// a tx in `[begin, end]` go free: no open reader is in the range, so none ever saw them.
    /// Does nothing if `begin > end`.
    pub fn release_range(&mut self, begin: Txid, end: Txid) {
        let ids = self.pending.take_range(begin, end);
        self.release_ids(ids);
    }

    /// Merges released ids (pending, hence unique and not free) into the free set, measured.
    fn release_ids(&mut self, mut ids: Vec<Pgid>) {
        // Most calls (one per open reader per write tx) find nothing: no sample for those, so
        // the histogram describes real releases.
        if ids.is_empty() {
            return;
        }
        let timer = Timer::start();
        let span = tracing::debug_span!(
            names::FREELIST_RELEASE,
            pages = tracing::field::Empty,
            algorithm = self.kind().as_str(),
        );
        let _entered = span.enter();
        span.record("pages", ids.len());
        ids.sort_unstable();
        // Pending ids stay in `cache`: they are still freed, only now reusable.
        self.set.merge(&ids);
        let ns = timer.elapsed_ns();
        self.metrics.freelist_release.record(ns);
        telemetry::request::record(names::FREELIST_RELEASE, &timer, ns);
        self.metrics
            .freelist_free_pages
            .set(i64::try_from(self.set.free_count()).unwrap_or(i64::MAX));
    }

    /// Restores the state before tx `txid` began: pages it freed are in use again (with their
    /// allocation records), and every run it allocated from the free set is free again.
    pub fn rollback(&mut self, txid: Txid) {
        let mut give_back = Vec::new();
        for page in self.pending.take_tx(txid) {
            self.cache.remove(&page.id);
            if page.alloc_txid == txid && txid != 0 {
                // Allocated and freed by this very tx: it goes back to the free set (bbolt's
                // rule; usually also covered by `tx_runs`).
                give_back.push(page.id);
            } else if page.origin == AllocOrigin::Recorded {
                self.allocs.insert(page.id, page.alloc_txid);
            }
        }
        if let Some(tx) = self.tx_runs.take_if(|tx| tx.txid == txid) {
            for (start, pages) in tx.runs {
                if self.allocs.get(&start) == Some(&txid) {
                    self.allocs.remove(&start);
                }
                give_back.extend(start..start + pages);
            }
        }
        give_back.sort_unstable();
        give_back.dedup();
        // After a `reload` the free set may already hold some of them.
        give_back.retain(|id| !self.cache.contains(id));
        self.cache.extend(give_back.iter().copied());
        self.set.merge(&give_back);
    }

    /// Whether `id` is free or pending.
    pub fn freed(&self, id: Pgid) -> bool {
        self.cache.contains(&id)
    }

    /// Free pages (reusable now).
    pub fn free_count(&self) -> usize {
        self.set.free_count()
    }

    /// Pending pages (freed, waiting for readers).
    pub fn pending_count(&self) -> usize {
        self.pending.count()
    }

    /// Free and pending pages: the number of ids the freelist page stores.
    pub fn count(&self) -> usize {
        self.free_count() + self.pending_count()
    }

    /// Free ∪ pending, sorted ascending: what the freelist page stores.
    pub fn all_ids(&self) -> Vec<Pgid> {
        merge_sorted(&self.set.ids(), &self.pending.ids())
    }

    /// Free ids only, sorted ascending.
    pub fn free_ids(&self) -> Vec<Pgid> {
        self.set.ids()
    }

    /// The pages `txid` freed that are still pending, in the order freed.
    pub fn pending_ids(&self, txid: Txid) -> Vec<Pgid> {
        self.pending.tx_ids(txid)
    }

    /// Run statistics of the free set.
    pub fn runs(&self) -> RunStats {
        self.set.runs()
    }

    /// Verifies that the free set is internally consistent and that free and pending ids are
    /// disjoint and exactly the double-free cache. O(free + pending).
    pub fn check(&self) -> Result<(), FreelistError> {
        self.set.check().map_err(FreelistError::Inconsistent)?;
        let free = self.set.ids();
        if let Some(id) = free
            .iter()
            .chain(self.pending.pages().map(|p| &p.id))
            .find(|id| !self.cache.contains(id))
        {
            return Err(FreelistError::Inconsistent(format!(
                "page {id} free or pending but not cached"
            )));
        }
        // Every id is cached, so equal sizes mean no id is counted twice.
        let listed = free.len() + self.pending.count();
        if listed != self.cache.len() {
            return Err(FreelistError::Inconsistent(format!(
                "{listed} free and pending ids but {} cached (an id is listed twice, or a \
                 cached id is neither)",
                self.cache.len()
            )));
        }
        Ok(())
    }
}

/// A `HashMap` keyed by page id, with [`PgidHasher`].
type PgidMap<V> = HashMap<Pgid, V, BuildHasherDefault<PgidHasher>>;
/// A `HashSet` of page ids, with [`PgidHasher`].
type PgidSet = HashSet<Pgid, BuildHasherDefault<PgidHasher>>;

/// Hashes a page id with one 128-bit multiply, folded. Page ids come from our own file, not
/// from clients, so std's SipHash (DoS resistance) buys nothing here, and it is most of the
/// cost of the freelist's per-page lookups (`cache`, `allocs`, the map's run ends).
#[derive(Default, Clone, Copy)]
struct PgidHasher(u64);

impl Hasher for PgidHasher {
    fn finish(&self) -> u64 {
        // Folding both halves of the product mixes every input bit into the low bits (bucket
        // index) and the high bits (hashbrown's tag) alike.
        let product = u128::from(self.0) * 0x9E37_79B9_7F4A_7C15;
        (product as u64) ^ ((product >> 64) as u64)
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for page ids; this keeps other key types correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(32) ^ n;
    }
}

/// Sorts, dedups and drops meta page ids (which only a corrupt page would hold).
fn normalize(ids: &[Pgid]) -> Vec<Pgid> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let meta = ids.partition_point(|&id| id <= 1);
    if meta > 0 {
        tracing::warn!(
            dropped = ?&ids[..meta],
            "freelist page lists meta pages as free; ignoring them"
        );
        ids.drain(..meta);
    }
    ids
}

/// Merges two ascending lists in one pass.
fn merge_sorted(a: &[Pgid], b: &[Pgid]) -> Vec<Pgid> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] <= b[j] {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// The one suite both algorithms must pass: every test is a function of the [`FreelistType`],
/// instantiated once per algorithm by `for_each_kind!`.
#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;
    use proptest::sample::Index;
    use telemetry::capture::Capture;

    use super::*;

    fn new_freelist(kind: FreelistType) -> Freelist {
        Freelist::new(kind, Arc::new(Metrics::new()))
    }

    fn with_free(kind: FreelistType, ids: &[Pgid]) -> Freelist {
        let mut f = new_freelist(kind);
        f.read_ids(ids);
        f
    }

    fn stats(free_pages: u64, runs: u64, longest: u64) -> RunStats {
        RunStats {
            free_pages,
            runs,
            longest,
        }
    }

    /// Generates `mod array` and `mod map`, each with one `#[test]` per listed function.
    macro_rules! for_each_kind {
        ($($test:ident),* $(,)?) => {
            mod array {
                $( #[test] fn $test() { super::$test(super::FreelistType::Array) } )*
            }
            mod map {
                $( #[test] fn $test() { super::$test(super::FreelistType::Map) } )*
            }
        };
    }

    for_each_kind!(
        allocate_exact_run,
        allocate_splits_a_larger_run,
        allocate_none_fits,
        allocations_are_contiguous_and_disjoint,
        allocate_never_returns_pending_pages,
        merge_joins_left_neighbour,
        merge_joins_right_neighbour,
        merge_joins_both_neighbours,
        free_makes_pages_pending,
        free_overflow_pages,
        free_meta_pages_is_reserved,
        double_free_is_an_error_and_changes_nothing,
        release_by_txid,
        release_range_bbolt_cases,
        freelist_page_alloc_txid_is_inferred,
        rollback_restores_exact_state,
        rollback_of_unknown_tx_changes_nothing,
        rollback_after_reload_gives_nothing_twice,
        set_kind_preserves_contents,
        read_ids_sorts_dedups_and_drops_meta,
        reload_keeps_pending,
        all_ids_merges_free_and_pending,
        e2e_multi_span_overflows,
        e2e_happy_path,
        allocate_is_measured,
        release_is_measured,
        model_sequences,
    );

    fn allocate_exact_run(kind: FreelistType) {
        let mut f = with_free(kind, &[3, 5, 7, 8, 10]);
        assert_eq!(f.allocate(1, 2), Some(7));
        assert_eq!(f.free_ids(), vec![3, 5, 10]);
        assert!(!f.freed(7) && !f.freed(8));
        assert_eq!(f.check(), Ok(()));
    }

    fn allocate_splits_a_larger_run(kind: FreelistType) {
        let mut f = with_free(kind, &[3, 10, 11, 12, 13, 14]);
        assert_eq!(f.allocate(1, 3), Some(10));
        assert_eq!(f.free_ids(), vec![3, 13, 14]);
        assert_eq!(f.allocate(1, 2), Some(13));
        assert_eq!(f.free_ids(), vec![3]);
        assert_eq!(f.runs(), stats(1, 1, 1));
        assert_eq!(f.check(), Ok(()));
    }

    fn allocate_none_fits(kind: FreelistType) {
        let mut f = new_freelist(kind);
        assert_eq!(f.allocate(1, 1), None);
        f.read_ids(&[3, 5, 7]);
        assert_eq!(f.allocate(1, 2), None);
        assert_eq!(f.allocate(1, 0), None);
        assert_eq!(f.free_ids(), vec![3, 5, 7]);
        assert_eq!(f.check(), Ok(()));
    }

    fn allocations_are_contiguous_and_disjoint(kind: FreelistType) {
        // Runs of 1..=6 pages separated by one used page.
        let mut ids = Vec::new();
        let mut next = 2;
        for len in 1..=6u64 {
            ids.extend(next..next + len);
            next += len + 1;
        }
        let mut f = with_free(kind, &ids);
        let mut free: BTreeSet<Pgid> = ids.iter().copied().collect();
        for n in [3usize, 1, 2, 6, 2, 4, 1, 2, 2, 1, 1, 1, 1, 1] {
            let longest = f.runs().longest;
            let Some(start) = f.allocate(9, n) else {
                assert!(longest < n as u64, "missed {n} with a run of {longest}");
                continue;
            };
            for id in start..start + n as u64 {
                assert!(
                    free.remove(&id),
                    "page {id} of run {start}+{n} was not free"
                );
                assert!(!f.freed(id));
            }
            assert_eq!(f.free_ids(), free.iter().copied().collect::<Vec<_>>());
            assert_eq!(f.check(), Ok(()));
        }
        assert_eq!(f.free_count(), 0);
    }

    fn allocate_never_returns_pending_pages(kind: FreelistType) {
        let mut f = with_free(kind, &[3]);
        f.free(5, 4, 2, false).expect("in use");
        assert_eq!(f.allocate(6, 1), Some(3));
        assert_eq!(f.allocate(6, 1), None);
        assert_eq!(f.pending_count(), 3);
    }

    fn merge_joins_left_neighbour(kind: FreelistType) {
        let mut f = with_free(kind, &[10, 11, 20]);
        f.free(5, 12, 1, false).expect("in use");
        f.release(5);
        assert_eq!(f.runs(), stats(5, 2, 4));
        assert_eq!(f.allocate(6, 4), Some(10));
        assert_eq!(f.check(), Ok(()));
    }

    fn merge_joins_right_neighbour(kind: FreelistType) {
        let mut f = with_free(kind, &[5, 12, 13]);
        f.free(5, 10, 1, false).expect("in use");
        f.release(5);
        assert_eq!(f.runs(), stats(5, 2, 4));
        assert_eq!(f.allocate(6, 4), Some(10));
        assert_eq!(f.check(), Ok(()));
    }

    fn merge_joins_both_neighbours(kind: FreelistType) {
        let mut f = with_free(kind, &[10, 11, 15, 16]);
        f.free(5, 12, 2, false).expect("in use");
        assert_eq!(f.runs(), stats(4, 2, 2), "pending pages are not free yet");
        f.release(5);
        assert_eq!(f.runs(), stats(7, 1, 7));
        assert_eq!(f.free_ids(), (10..=16).collect::<Vec<_>>());
        assert_eq!(f.allocate(6, 7), Some(10));
        assert_eq!(f.runs(), stats(0, 0, 0));
        assert_eq!(f.check(), Ok(()));
    }

    // bbolt: TestFreelist_free
    fn free_makes_pages_pending(kind: FreelistType) {
        let mut f = new_freelist(kind);
        f.free(100, 12, 0, false).expect("in use");
        assert_eq!(f.pending_ids(100), vec![12]);
        assert!(f.freed(12));
        assert_eq!((f.free_count(), f.pending_count(), f.count()), (0, 1, 1));
    }

    // bbolt: TestFreelist_free_overflow
    fn free_overflow_pages(kind: FreelistType) {
        let mut f = new_freelist(kind);
        f.free(100, 12, 3, false).expect("in use");
        assert_eq!(f.pending_ids(100), vec![12, 13, 14, 15]);
    }

    // bbolt: TestFreelist_free_meta_panics
    fn free_meta_pages_is_reserved(kind: FreelistType) {
        let mut f = new_freelist(kind);
        assert_eq!(f.free(100, 0, 0, false), Err(FreelistError::Reserved(0)));
        assert_eq!(f.free(100, 1, 3, false), Err(FreelistError::Reserved(1)));
        assert_eq!(f.count(), 0);
    }

    // bbolt: TestFreelist_free_double_free_panics (an error here, and nothing changes)
    fn double_free_is_an_error_and_changes_nothing(kind: FreelistType) {
        let mut f = with_free(kind, &[20]);
        f.free(100, 12, 3, false).expect("in use");
        assert_eq!(
            f.free(100, 12, 3, false),
            Err(FreelistError::DoubleFree(12))
        );
        // Overlapping only at its end: pages 10 and 11 must not become pending.
        assert_eq!(
            f.free(101, 10, 2, false),
            Err(FreelistError::DoubleFree(12))
        );
        assert!(!f.freed(10) && !f.freed(11));
        assert_eq!(
            f.free(101, 20, 0, false),
            Err(FreelistError::DoubleFree(20))
        );
        assert_eq!(f.pending_ids(101), Vec::<Pgid>::new());
        assert_eq!(f.all_ids(), vec![12, 13, 14, 15, 20]);
        assert_eq!(f.check(), Ok(()));
    }

    // bbolt: TestFreelist_release
    fn release_by_txid(kind: FreelistType) {
        let mut f = new_freelist(kind);
        f.free(100, 12, 1, false).expect("in use");
        f.free(100, 9, 0, false).expect("in use");
        f.free(102, 39, 0, false).expect("in use");
        f.release(100);
        f.release(101);
        assert_eq!(f.free_ids(), vec![9, 12, 13]);
        assert_eq!(f.pending_ids(102), vec![39]);
        f.release(102);
        assert_eq!(f.free_ids(), vec![9, 12, 13, 39]);
        assert_eq!(f.pending_count(), 0);
        assert!(f.freed(39), "released pages are still freed");
        assert_eq!(f.check(), Ok(()));
    }

    // bbolt: TestFreelist_releaseRange, every case.
    fn release_range_bbolt_cases(kind: FreelistType) {
        /// `n` pages at `id`, allocated by tx `alloc` and freed by tx `free`.
        struct Page {
            id: Pgid,
            n: usize,
            alloc: Txid,
            free: Txid,
        }
        struct Case {
            title: &'static str,
            pages: Vec<Page>,
            ranges: Vec<(Txid, Txid)>,
            want_free: Vec<Pgid>,
        }
        let p = |id, n, alloc, free| Page { id, n, alloc, free };
        let case = |title, pages, ranges, want_free| Case {
            title,
            pages,
            ranges,
            want_free,
        };
        let cases = [
            case(
                "single pending in range",
                vec![p(3, 1, 100, 200)],
                vec![(1, 300)],
                vec![3],
            ),
            case(
                "single pending with minimum end range",
                vec![p(3, 1, 100, 200)],
                vec![(1, 200)],
                vec![3],
            ),
            case(
                "single pending outside minimum end range",
                vec![p(3, 1, 100, 200)],
                vec![(1, 199)],
                vec![],
            ),
            case(
                "single pending with minimum begin range",
                vec![p(3, 1, 100, 200)],
                vec![(100, 300)],
                vec![3],
            ),
            case(
                "single pending outside minimum begin range",
                vec![p(3, 1, 100, 200)],
                vec![(101, 300)],
                vec![],
            ),
            case(
                "single pending in minimum range",
                vec![p(3, 1, 199, 200)],
                vec![(199, 200)],
                vec![3],
            ),
            case(
                "single pending and read transaction at 199",
                vec![p(3, 1, 199, 200)],
                vec![(100, 198), (200, 300)],
                vec![],
            ),
            case(
                "adjacent pending and read transactions at 199, 200",
                vec![p(3, 1, 199, 200), p(4, 1, 200, 201)],
                // (200, 199) is the empty range the engine produces for adjacent readers.
                vec![(100, 198), (200, 199), (201, 300)],
                vec![],
            ),
            case(
                "out of order ranges",
                vec![p(3, 1, 199, 200), p(4, 1, 200, 201)],
                vec![(201, 199), (201, 200), (200, 200)],
                vec![],
            ),
            case(
                "multiple pending, read transaction at 150",
                vec![
                    p(3, 1, 100, 200),
                    p(4, 1, 100, 125),
                    p(5, 1, 125, 150),
                    p(6, 1, 125, 175),
                    p(7, 2, 150, 175),
                    p(9, 2, 175, 200),
                ],
                vec![(50, 149), (151, 300)],
                vec![4, 9, 10],
            ),
        ];
        for c in cases {
            let title = c.title;
            let mut ids = Vec::new();
            for page in &c.pages {
                ids.extend(page.id..page.id + page.n as u64);
            }
            let mut f = with_free(kind, &ids);
            for page in &c.pages {
                assert_eq!(f.allocate(page.alloc, page.n), Some(page.id), "{title}");
            }
            for page in &c.pages {
                f.free(page.free, page.id, page.n as u32 - 1, false)
                    .expect("allocated above");
            }
            for (begin, end) in c.ranges {
                f.release_range(begin, end);
            }
            assert_eq!(f.free_ids(), c.want_free, "{title}");
            assert_eq!(f.check(), Ok(()), "{title}");
        }
    }

    // bbolt v1.3.6 `free`: the freelist page is always allocated by the prior tx.
    fn freelist_page_alloc_txid_is_inferred(kind: FreelistType) {
        let mut f = new_freelist(kind);
        f.free(100, 12, 0, true).expect("in use");
        f.free(100, 20, 0, false).expect("in use");
        f.release_range(99, 100);
        assert_eq!(
            f.free_ids(),
            vec![12],
            "only the freelist page was never seen"
        );
        assert_eq!(f.pending_ids(100), vec![20]);
        // A rollback must not invent an allocation record for the guess.
        let mut g = new_freelist(kind);
        g.free(100, 12, 0, true).expect("in use");
        g.rollback(100);
        assert!(g.allocs.is_empty());
        assert_eq!(g.count(), 0);
        assert!(!g.freed(12));
    }

    /// The state rollback tests compare: everything observable plus the allocation records.
    #[derive(Debug, PartialEq, Eq)]
    struct State {
        free: Vec<Pgid>,
        all: Vec<Pgid>,
        pending: Vec<(Txid, Vec<Pgid>)>,
        allocs: Vec<(Pgid, Txid)>,
    }

    fn snapshot(f: &Freelist) -> State {
        let mut allocs: Vec<_> = f.allocs.iter().map(|(&p, &t)| (p, t)).collect();
        allocs.sort_unstable();
        State {
            free: f.free_ids(),
            all: f.all_ids(),
            pending: (0..=10).map(|t| (t, f.pending_ids(t))).collect(),
            allocs,
        }
    }

    /// Txs 4 and 5 commit: tx 4 allocates two runs, tx 5 frees page 30.
    fn committed_history(kind: FreelistType) -> (Freelist, Pgid, Pgid) {
        let mut f = with_free(kind, &[3, 4, 5, 6, 10, 12, 13, 40, 41, 42]);
        let a = f.allocate(4, 1).expect("fits");
        let b = f.allocate(4, 2).expect("fits");
        f.free(5, 30, 0, false).expect("in use");
        (f, a, b)
    }

    fn rollback_restores_exact_state(kind: FreelistType) {
        let (mut f, a, b) = committed_history(kind);
        let (mut twin, _, _) = committed_history(kind);
        let before = snapshot(&f);

        // Tx 6 allocates, frees pages of every origin, then rolls back.
        let c = f.allocate(6, 3).expect("fits");
        let d = f.allocate(6, 1).expect("fits");
        f.free(6, a, 0, false).expect("allocated by tx 4");
        f.free(6, b, 1, false).expect("allocated by tx 4");
        f.free(6, 50, 1, true).expect("the old freelist page");
        f.free(6, c, 2, false).expect("allocated by tx 6");
        assert_ne!(snapshot(&f), before);
        f.rollback(6);

        assert_eq!(snapshot(&f), before);
        assert_eq!(f.runs(), twin.runs());
        assert_eq!(
            (f.free_count(), f.pending_count()),
            (twin.free_count(), twin.pending_count())
        );
        for id in 0..60 {
            assert_eq!(f.freed(id), twin.freed(id), "freed({id})");
        }
        assert_eq!(f.check(), Ok(()));
        // Tx 4's records survived: a range with no reader in [4, 7] releases its pages.
        for g in [&mut f, &mut twin] {
            g.free(7, a, 0, false).expect("allocated by tx 4");
            g.release_range(4, 7);
        }
        assert_eq!(f.free_ids(), twin.free_ids());
        assert!(f.free_ids().contains(&a));
        // And later allocations make the same choices.
        for n in [1, 3, 2, 1, 4, 1] {
            assert_eq!(
                f.allocate(8, n),
                twin.allocate(8, n),
                "allocate({n}) after {d}"
            );
        }
        assert_eq!(snapshot(&f), snapshot(&twin));
    }

    // bbolt: TestFreelist_E2E_Rollbacks
    fn rollback_of_unknown_tx_changes_nothing(kind: FreelistType) {
        let mut f = new_freelist(kind);
        f.free(2, 5, 1, false).expect("in use");
        f.free(2, 8, 0, false).expect("in use");
        assert_eq!(f.all_ids(), vec![5, 6, 8]);
        f.rollback(2);
        assert_eq!(f.count(), 0);
        f.free(4, 13, 3, false).expect("in use");
        f.release(4);
        assert_eq!(f.free_ids(), vec![13, 14, 15, 16]);
        f.rollback(1337);
        assert_eq!(f.free_ids(), vec![13, 14, 15, 16]);
        assert_eq!(f.pending_count(), 0);
        assert_eq!(f.check(), Ok(()));
    }

    // bbolt's tx rollback: `rollback(txid)` then, if the freelist page is behind, `reload` — and
    // the opposite order must not put a page into the free set twice.
    fn rollback_after_reload_gives_nothing_twice(kind: FreelistType) {
        let on_disk = [3, 4, 5, 9];
        for reload_first in [false, true] {
            let mut f = with_free(kind, &on_disk);
            f.free(6, 20, 0, false).expect("in use");
            let start = f.allocate(7, 3).expect("fits");
            assert_eq!(start, 3);
            f.free(7, 30, 0, false).expect("in use");
            if reload_first {
                f.reload(&[3, 4, 5, 9, 20]);
                f.rollback(7);
            } else {
                f.rollback(7);
                f.reload(&[3, 4, 5, 9, 20]);
            }
            assert_eq!(
                f.free_ids(),
                vec![3, 4, 5, 9],
                "reload_first={reload_first}"
            );
            assert_eq!(f.pending_ids(6), vec![20]);
            assert_eq!(f.pending_count(), 1);
            assert_eq!(f.check(), Ok(()));
        }
    }

    fn set_kind_preserves_contents(kind: FreelistType) {
        let other = match kind {
            FreelistType::Array => FreelistType::Map,
            FreelistType::Map => FreelistType::Array,
        };
        let (mut f, _, _) = committed_history(kind);
        let c = f.allocate(6, 2).expect("fits");
        f.free(6, 60, 0, false).expect("in use");
        let before = (snapshot(&f), f.runs(), f.count());
        f.set_kind(other);
        assert_eq!(f.kind(), other);
        assert_eq!((snapshot(&f), f.runs(), f.count()), before);
        f.set_kind(other); // no-op
        assert_eq!(f.check(), Ok(()));
        // A rollback after switching still gives back what tx 6 took.
        f.rollback(6);
        let (twin, _, _) = committed_history(kind);
        assert_eq!(snapshot(&f), snapshot(&twin));
        assert!(f.freed(c));
    }

    // bbolt: TestFreelist_read, TestFreeList_init
    fn read_ids_sorts_dedups_and_drops_meta(kind: FreelistType) {
        let (mut f, _, _) = committed_history(kind);
        f.read_ids(&[50, 23, 8, 23, 1, 0, 9]);
        assert_eq!(f.free_ids(), vec![8, 9, 23, 50]);
        assert_eq!(f.pending_count(), 0);
        assert!(f.allocs.is_empty());
        assert!(!f.freed(0) && !f.freed(1) && f.freed(50));
        assert_eq!(f.check(), Ok(()));
        f.read_ids(&[]);
        assert_eq!(f.free_ids(), Vec::<Pgid>::new());
        assert_eq!(f.check(), Ok(()));
    }

    // bbolt: TestFreeList_reload
    fn reload_keeps_pending(kind: FreelistType) {
        let mut f = with_free(kind, &[5, 6, 8]);
        f.free(5, 10, 2, false).expect("in use");
        f.reload(&[5, 6, 8]);
        assert_eq!(f.free_ids(), vec![5, 6, 8]);
        assert_eq!(f.pending_ids(5), vec![10, 11, 12]);
        // A page written while 10..=12 were pending lists them too: they stay pending only.
        f.reload(&[12, 5, 6, 8, 10, 11]);
        assert_eq!(f.free_ids(), vec![5, 6, 8]);
        assert_eq!(f.all_ids(), vec![5, 6, 8, 10, 11, 12]);
        assert_eq!(f.check(), Ok(()));
    }

    // bbolt: TestFreelist_write
    fn all_ids_merges_free_and_pending(kind: FreelistType) {
        let mut f = with_free(kind, &[12, 39]);
        f.free(100, 28, 0, false).expect("in use");
        f.free(100, 11, 0, false).expect("in use");
        f.free(101, 3, 0, false).expect("in use");
        assert_eq!(f.all_ids(), vec![3, 11, 12, 28, 39]);
        assert_eq!(f.count(), 5);
        let mut g = new_freelist(kind);
        g.read_ids(&f.all_ids());
        assert_eq!(g.free_ids(), vec![3, 11, 12, 28, 39]);
    }

    // bbolt: TestFreelist_E2E_MultiSpanOverflows
    fn e2e_multi_span_overflows(kind: FreelistType) {
        let mut f = new_freelist(kind);
        for (id, overflow) in [(20, 1), (25, 2), (35, 3), (39, 2), (45, 4)] {
            f.free(10, id, overflow, false).expect("in use");
        }
        let all = vec![
            20, 21, 25, 26, 27, 35, 36, 37, 38, 39, 40, 41, 45, 46, 47, 48, 49,
        ];
        assert_eq!((f.free_ids(), f.all_ids()), (vec![], all.clone()));
        f.release(Txid::MAX - 1);
        assert_eq!((f.free_ids(), f.all_ids()), (all.clone(), all));
        for (n, want) in [(7, 35), (5, 45), (3, 25), (2, 20)] {
            let start = f.allocate(11, n).expect("fits");
            assert_eq!(start, want);
            assert!((start..start + n as u64).all(|id| !f.freed(id)));
        }
        assert_eq!(f.count(), 0);
    }

    // bbolt: TestFreelist_E2E_HappyPath
    fn e2e_happy_path(kind: FreelistType) {
        let mut f = new_freelist(kind);
        assert_eq!(f.allocate(1, 5), None);
        for id in [5, 3, 8] {
            f.free(2, id, 0, false).expect("in use");
        }
        assert_eq!((f.free_ids(), f.all_ids()), (vec![], vec![3, 5, 8]));
        f.release(2);
        assert_eq!((f.free_ids(), f.all_ids()), (vec![3, 5, 8], vec![3, 5, 8]));
        assert_eq!(f.allocate(4, 2), None);
        let mut expected: BTreeSet<Pgid> = [3, 5, 8].into();
        for _ in 0..3 {
            let id = f.allocate(4, 1).expect("a single page is free");
            assert!(expected.remove(&id), "unexpected page {id}");
            assert!(!f.freed(id));
        }
        assert_eq!(f.allocate(4, 1), None);
    }

    fn allocate_is_measured(kind: FreelistType) {
        let metrics = Arc::new(Metrics::new());
        let mut f = Freelist::new(kind, metrics.clone());
        f.read_ids(&[5, 6, 7]);
        let (capture, _guard) = Capture::install();

        assert_eq!(f.allocate(9, 2), Some(5));
        let spans = capture.spans_named(names::FREELIST_ALLOCATE);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].field("run"), Some("2"));
        assert_eq!(spans[0].field("free_pages"), Some("3"));
        assert_eq!(spans[0].field("algorithm"), Some(kind.as_str()));
        assert_eq!(spans[0].field("outcome"), Some("reused"));
        assert_eq!(metrics.freelist_allocate.count(), 1);
        assert_eq!(metrics.freelist_allocate_misses.get(), 0);

        assert_eq!(f.allocate(9, 2), None);
        let spans = capture.spans_named(names::FREELIST_ALLOCATE);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[1].field("free_pages"), Some("1"));
        assert_eq!(spans[1].field("outcome"), Some("miss"));
        assert_eq!(metrics.freelist_allocate.count(), 2);
        assert_eq!(metrics.freelist_allocate_misses.get(), 1);
    }

    fn release_is_measured(kind: FreelistType) {
        let metrics = Arc::new(Metrics::new());
        let mut f = Freelist::new(kind, metrics.clone());
        f.read_ids(&[20]);
        f.free(3, 5, 1, false).expect("in use");
        f.free(4, 9, 0, false).expect("in use");
        let (capture, _guard) = Capture::install();

        f.release(3);
        let spans = capture.spans_named(names::FREELIST_RELEASE);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].field("pages"), Some("2"));
        assert_eq!(spans[0].field("algorithm"), Some(kind.as_str()));
        assert_eq!(metrics.freelist_release.count(), 1);
        assert_eq!(metrics.freelist_free_pages.get(), 3);

        // Page 9's allocating tx is unknown: nothing moves, and an empty release is not a
        // sample (one happens per open reader per write tx).
        f.release_range(4, 4);
        assert_eq!(capture.spans_named(names::FREELIST_RELEASE).len(), 1);
        assert_eq!(metrics.freelist_release.count(), 1);
    }

    #[test]
    fn freelist_type_parses_and_prints() {
        for (text, kind) in [
            ("array", FreelistType::Array),
            ("ARRAY", FreelistType::Array),
            ("map", FreelistType::Map),
            ("hashmap", FreelistType::Map),
            ("HashMap", FreelistType::Map),
        ] {
            assert_eq!(text.parse::<FreelistType>(), Ok(kind));
        }
        let err = "list".parse::<FreelistType>().expect_err("not a type");
        assert!(err.contains("\"list\"") && err.contains("array"), "{err}");
        assert_eq!(FreelistType::default(), FreelistType::Map);
        assert_eq!(FreelistType::Array.to_string(), "array");
        assert_eq!(FreelistType::Map.to_string(), "map");
    }

    // ---- Model-based test --------------------------------------------------------------------

    /// A page the engine holds: `[id, id + overflow]`, allocated by `alloc` if the freelist
    /// recorded it (allocated from the free set and not forgotten by a reopen).
    #[derive(Debug, Clone)]
    struct InUse {
        id: Pgid,
        overflow: u32,
        alloc: Option<Txid>,
    }

    /// The freelist as plain sets: what the engine believes, tx by tx.
    #[derive(Debug, Clone, Default)]
    struct Model {
        free: BTreeSet<Pgid>,
        /// Freeing txid → (page id, allocating txid or 0).
        pending: BTreeMap<Txid, Vec<(Pgid, Txid)>>,
        in_use: Vec<InUse>,
        /// The file's page count: misses grow it.
        high_water: Pgid,
    }

    impl Model {
        fn all(&self) -> BTreeSet<Pgid> {
            let mut all = self.free.clone();
            all.extend(self.pending.values().flatten().map(|&(id, _)| id));
            all
        }

        fn longest_run(&self) -> u64 {
            self.runs().longest
        }

        fn runs(&self) -> RunStats {
            let mut s = stats(self.free.len() as u64, 0, 0);
            let (mut prev, mut run) = (None, 0);
            for &id in &self.free {
                if prev.is_some_and(|p: Pgid| p + 1 == id) {
                    run += 1;
                } else {
                    s.runs += 1;
                    run = 1;
                }
                s.longest = s.longest.max(run);
                prev = Some(id);
            }
            s
        }

        fn allocs(&self) -> Vec<(Pgid, Txid)> {
            let mut a: Vec<_> = self
                .in_use
                .iter()
                .filter_map(|p| p.alloc.map(|t| (p.id, t)))
                .collect();
            a.sort_unstable();
            a
        }

        fn release_upto(&mut self, txid: Txid) {
            let keep = self.pending.split_off(&(txid + 1));
            for (id, _) in std::mem::replace(&mut self.pending, keep)
                .into_values()
                .flatten()
            {
                self.free.insert(id);
            }
        }

        fn release_range(&mut self, begin: Txid, end: Txid) {
            for (_, pages) in self.pending.range_mut(begin..=end) {
                pages.retain(|&(id, alloc)| {
                    let go = (begin..=end).contains(&alloc);
                    if go {
                        self.free.insert(id);
                    }
                    !go
                });
            }
            self.pending.retain(|_, pages| !pages.is_empty());
        }
    }

    #[derive(Debug, Clone)]
    enum Release {
        None,
        /// `release(txid - back)`.
        Upto(u8),
        /// `release_range(txid - back, txid - back + len)`; `len` 255 means `Txid::MAX`.
        Range(u8, u8),
    }

    #[derive(Debug, Clone)]
    enum Op {
        Allocate(usize),
        Free {
            pick: Index,
            freelist_page: bool,
        },
        /// Free an id that is already free or pending.
        FreeAgain(Index),
        FreeMeta(bool),
        /// The tx commits; the next one begins with a release, as bbolt's `freePages` does.
        Commit(Release),
        /// The tx rolls back, optionally followed by bbolt's `reload` of the last freelist page.
        Rollback {
            reload: bool,
        },
        SetKind(FreelistType),
        /// The tx commits and the file is reopened: the freelist page is read back.
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        let release = prop_oneof![
            Just(Release::None),
            (0u8..4).prop_map(Release::Upto),
            (0u8..6, prop_oneof![0u8..6, Just(255u8)]).prop_map(|(b, l)| Release::Range(b, l)),
        ];
        let kind = prop_oneof![Just(FreelistType::Array), Just(FreelistType::Map)];
        prop_oneof![
            6 => (0usize..5).prop_map(Op::Allocate),
            6 => (any::<Index>(), any::<bool>())
                .prop_map(|(pick, freelist_page)| Op::Free { pick, freelist_page }),
            1 => any::<Index>().prop_map(Op::FreeAgain),
            1 => any::<bool>().prop_map(Op::FreeMeta),
            3 => release.prop_map(Op::Commit),
            2 => any::<bool>().prop_map(|reload| Op::Rollback { reload }),
            1 => kind.prop_map(Op::SetKind),
            1 => Just(Op::Reopen),
        ]
    }

    /// Runs `ops` on a freelist of `kind` and on the model, comparing after every step.
    fn run_model(kind: FreelistType, initial: &[bool], ops: &[Op]) -> Result<(), TestCaseError> {
        let mut m = Model {
            high_water: 2 + initial.len() as Pgid,
            ..Model::default()
        };
        for (i, &is_free) in initial.iter().enumerate() {
            let id = 2 + i as Pgid;
            if is_free {
                m.free.insert(id);
            } else {
                m.in_use.push(InUse {
                    id,
                    overflow: 0,
                    alloc: None,
                });
            }
        }
        let mut f = new_freelist(kind);
        f.read_ids(&m.free.iter().copied().collect::<Vec<_>>());
        let mut txid: Txid = 2;
        let mut at_begin = m.clone();

        for op in ops {
            match op {
                Op::Allocate(n) => {
                    let n = *n;
                    match f.allocate(txid, n) {
                        Some(start) => {
                            prop_assert!(n > 0);
                            for id in start..start + n as Pgid {
                                prop_assert!(m.free.remove(&id), "{op:?}: page {id} not free");
                            }
                            m.in_use.push(InUse {
                                id: start,
                                overflow: n as u32 - 1,
                                alloc: Some(txid),
                            });
                        }
                        None => {
                            prop_assert!(
                                n == 0 || m.longest_run() < n as u64,
                                "{op:?}: missed with a run of {} free",
                                m.longest_run()
                            );
                            if n > 0 {
                                // The engine grows the file; the freelist records nothing.
                                m.in_use.push(InUse {
                                    id: m.high_water,
                                    overflow: n as u32 - 1,
                                    alloc: None,
                                });
                                m.high_water += n as Pgid;
                            }
                        }
                    }
                }
                Op::Free {
                    pick,
                    freelist_page,
                } => {
                    if m.in_use.is_empty() {
                        continue;
                    }
                    let page = m.in_use.swap_remove(pick.index(m.in_use.len()));
                    prop_assert_eq!(f.free(txid, page.id, page.overflow, *freelist_page), Ok(()));
                    let alloc = match page.alloc {
                        Some(t) => t,
                        None if *freelist_page => txid - 1,
                        None => 0,
                    };
                    let ids = page.id..=page.id + page.overflow as Pgid;
                    m.pending
                        .entry(txid)
                        .or_default()
                        .extend(ids.map(|id| (id, alloc)));
                }
                Op::FreeAgain(pick) => {
                    let all: Vec<Pgid> = m.all().into_iter().collect();
                    if all.is_empty() {
                        continue;
                    }
                    let id = all[pick.index(all.len())];
                    prop_assert_eq!(
                        f.free(txid, id, 0, false),
                        Err(FreelistError::DoubleFree(id))
                    );
                }
                Op::FreeMeta(one) => {
                    let id = Pgid::from(*one);
                    prop_assert_eq!(f.free(txid, id, 0, false), Err(FreelistError::Reserved(id)));
                }
                Op::Commit(release) => {
                    txid += 1;
                    match *release {
                        Release::None => {}
                        Release::Upto(back) => {
                            let upto = txid - 1 - Txid::from(back).min(txid - 1);
                            f.release(upto);
                            m.release_upto(upto);
                        }
                        Release::Range(back, len) => {
                            let begin = txid - Txid::from(back).min(txid);
                            let end = if len == 255 {
                                Txid::MAX
                            } else {
                                begin + Txid::from(len)
                            };
                            f.release_range(begin, end);
                            m.release_range(begin, end);
                        }
                    }
                    at_begin = m.clone();
                }
                Op::Rollback { reload } => {
                    f.rollback(txid);
                    if *reload {
                        f.reload(&at_begin.all().into_iter().collect::<Vec<_>>());
                    }
                    // The next writer reuses the txid, as in bbolt.
                    m = at_begin.clone();
                }
                Op::SetKind(k) => f.set_kind(*k),
                Op::Reopen => {
                    txid += 1;
                    f.read_ids(&m.all().into_iter().collect::<Vec<_>>());
                    m.free = m.all();
                    m.pending.clear();
                    for page in &mut m.in_use {
                        page.alloc = None;
                    }
                    at_begin = m.clone();
                }
            }

            let free: Vec<Pgid> = m.free.iter().copied().collect();
            prop_assert_eq!(f.free_ids(), free, "free ids after {:?}", op);
            prop_assert_eq!(f.all_ids(), m.all().into_iter().collect::<Vec<_>>());
            prop_assert_eq!(f.free_count(), m.free.len());
            prop_assert_eq!(f.count(), m.all().len());
            prop_assert_eq!(f.runs(), m.runs());
            for (&t, pages) in &m.pending {
                let mut want: Vec<Pgid> = pages.iter().map(|&(id, _)| id).collect();
                let mut got = f.pending_ids(t);
                want.sort_unstable();
                got.sort_unstable();
                prop_assert_eq!(got, want, "pending of tx {} after {:?}", t, op);
            }
            let mut allocs: Vec<_> = f.allocs.iter().map(|(&p, &t)| (p, t)).collect();
            allocs.sort_unstable();
            prop_assert_eq!(allocs, m.allocs(), "allocs after {:?}", op);
            let all = m.all();
            for id in 0..m.high_water + 2 {
                prop_assert_eq!(
                    f.freed(id),
                    all.contains(&id),
                    "freed({}) after {:?}",
                    id,
                    op
                );
            }
            prop_assert_eq!(f.check(), Ok(()));
        }
        Ok(())
    }

    fn model_sequences(kind: FreelistType) {
        let config = ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        let strategy = (
            prop::collection::vec(any::<bool>(), 0..64),
            prop::collection::vec(op(), 1..120),
        );
        proptest::test_runner::TestRunner::new(config)
            .run(&strategy, |(initial, ops)| run_model(kind, &initial, &ops))
            .expect("the freelist agrees with the model");
    }
}

//! A KV store over a real backend in a temp dir, for the MVCC tests: open, reopen from the
//! file (store stopped, backend closed and committed), and raw bucket reads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use glassd::storage::backend::{Backend, BackendConfig};
use glassd::storage::mvcc::{KvStore, KvStoreConfig};
use telemetry::Metrics;

/// Long enough that the commit loop never commits during a test that does not want it to.
pub const NEVER: Duration = Duration::from_secs(3600);

pub struct StoreEnv {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub metrics: Arc<Metrics>,
    pub config: KvStoreConfig,
    batch_limit: usize,
    backend: Option<Arc<Backend>>,
    store: Option<KvStore>,
}

fn open_backend(path: &Path, metrics: &Arc<Metrics>, batch_limit: usize) -> Arc<Backend> {
    let config = BackendConfig {
        batch_interval: NEVER,
        batch_limit,
        ..BackendConfig::new(path, metrics.clone())
    };
    Arc::new(Backend::open(config).unwrap())
}

impl StoreEnv {
    /// A fresh store whose backend commits every `batch_limit` writes (and never by time).
    pub fn open(config: KvStoreConfig, batch_limit: usize) -> StoreEnv {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let metrics = Arc::new(Metrics::new());
        let backend = open_backend(&path, &metrics, batch_limit);
        let store = KvStore::open(backend.clone(), metrics.clone(), config.clone()).unwrap();
        StoreEnv {
            _dir: dir,
            path,
            metrics,
            config,
            batch_limit,
            backend: Some(backend),
            store: Some(store),
        }
    }

    pub fn s(&self) -> &KvStore {
        self.store.as_ref().unwrap()
    }

    pub fn backend(&self) -> &Arc<Backend> {
        self.backend.as_ref().unwrap()
    }

    /// Stops the store (its compactor too); the backend stays open.
    pub fn stop_store(&mut self) {
        self.store = None;
    }

    /// Stops the store, closes the backend (committing) and opens both again from the file.
    pub fn reopen(&mut self) {
        self.reopen_with(self.config.clone());
    }

    pub fn reopen_with(&mut self, config: KvStoreConfig) {
        self.store = None;
        let backend = self.backend.take().unwrap();
        backend.close().unwrap();
        drop(backend);
        let backend = open_backend(&self.path, &self.metrics, self.batch_limit);
        self.store =
            Some(KvStore::open(backend.clone(), self.metrics.clone(), config.clone()).unwrap());
        self.backend = Some(backend);
        self.config = config;
    }

    /// Every entry of a bucket, as a fresh read sees it.
    pub fn raw_bucket(&self, name: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        self.backend()
            .read_tx()
            .for_each(name, |k, v| out.push((k.to_vec(), v.to_vec())))
            .unwrap();
        out
    }
}

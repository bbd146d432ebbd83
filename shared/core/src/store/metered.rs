//! A store that times every operation into [`Metrics`]: one decorator, so every store (embedded,
//! Firestore) reports the same operations under the same names.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use jiff::Timestamp;

use super::admit::{KeyAdmitted, KeyArrivals};
use super::{AlertRecord, Change, IncidentSummary, Rejection, Store, StoreError};
use crate::incident::Incident;
use crate::metrics::Metrics;

/// `inner`, timed.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Metrics,
}

impl MeteredStore {
    /// Times `inner`'s operations into `metrics`.
    pub fn new(inner: Arc<dyn Store>, metrics: Metrics) -> MeteredStore {
        MeteredStore { inner, metrics }
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = work.await;
        let outcome = result.as_ref().map_or_else(StoreError::metric_label, |_| "ok");
        self.metrics.store_operation(operation, outcome, started.elapsed());
        result
    }
}

#[async_trait]
impl Store for MeteredStore {
    async fn admit(
        &self,
        keys: &[KeyArrivals],
        log: &[AlertRecord],
    ) -> Result<Vec<Result<KeyAdmitted, StoreError>>, StoreError> {
        self.timed("admit", self.inner.admit(keys, log)).await
    }

    async fn close(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        self.timed("close", self.inner.close(id, now)).await
    }

    async fn update(&self, id: &str, change: Change) -> Result<bool, StoreError> {
        self.timed("update", self.inner.update(id, change)).await
    }

    async fn get(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        self.timed("get", self.inner.get(id)).await
    }

    async fn list(&self, limit: usize) -> Result<Vec<IncidentSummary>, StoreError> {
        self.timed("list", self.inner.list(limit)).await
    }

    async fn with_work(&self, now: Timestamp) -> Result<Vec<String>, StoreError> {
        self.timed("with_work", self.inner.with_work(now)).await
    }

    async fn record_rejection(&self, rejection: Rejection) -> Result<(), StoreError> {
        self.timed("record_rejection", self.inner.record_rejection(rejection)).await
    }

    async fn alert_log(&self, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
        self.timed("alert_log", self.inner.alert_log(limit)).await
    }

    async fn rejections(&self, limit: usize) -> Result<Vec<Rejection>, StoreError> {
        self.timed("rejections", self.inner.rejections(limit)).await
    }
}

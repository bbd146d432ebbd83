//! The evidence bucket: objects written once and hashed. Every write carries
//! `ifGenerationMatch=0`, so an object that exists (written by an earlier attempt of the step,
//! which crashed before recording it) is never overwritten: it is read back and its stored bytes
//! are hashed instead, so the hash the journal keeps is always the hash of what is in the bucket.

use bytes::Bytes;
use google_cloud_auth::credentials::Credentials;
use google_cloud_gax::retry_policy::NeverRetry;
use google_cloud_storage::client::Storage;
use riposte_core::digest::hex;
use riposte_core::executor::{CallFailure, ExecError};
use sha2::{Digest, Sha256};

use crate::retry::{Failure, RetryBudget, with_retries};

/// The Cloud Storage endpoint.
pub const DEFAULT_STORAGE_ENDPOINT: &str = "https://storage.googleapis.com";

/// Writes evidence objects.
#[derive(Clone)]
pub struct EvidenceBucket {
    client: Storage,
    retry: RetryBudget,
}

/// What a write found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The object is new: its content is what was sent.
    Created,
    /// The object was there already; this is what it holds.
    Existing {
        /// Hex SHA-256 of the stored bytes.
        sha256: String,
        /// Their number.
        bytes: u64,
    },
}

/// One object to write.
pub struct EvidenceObject<'a> {
    /// Bucket name (validated by the policy).
    pub bucket: &'a str,
    /// Object name.
    pub name: &'a str,
    /// Content type.
    pub content_type: &'a str,
    /// Custom metadata kept with the object (the incident, the content's hash).
    pub metadata: Vec<(String, String)>,
}

/// A failed Cloud Storage call.
#[derive(Debug, Clone)]
struct StorageError {
    status: Option<u16>,
    message: String,
}

impl StorageError {
    fn from_gax(e: &google_cloud_storage::Error) -> StorageError {
        StorageError { status: e.http_status_code(), message: e.to_string() }
    }

    fn into_exec(self, what: &str) -> ExecError {
        let retryable = self.transient();
        let reason = match self.status {
            Some(403) => "forbidden: riposte needs storage.objects.create and storage.objects.get on the bucket",
            Some(404) => "notFound: no such bucket",
            _ => "",
        };
        let failure =
            CallFailure { what: what.to_string(), status: self.status, reason: reason.into(), message: self.message };
        ExecError::Call { failure, retryable }
    }
}

impl Failure for StorageError {
    fn transient(&self) -> bool {
        match self.status {
            None => true,
            Some(code) => code == 408 || code == 429 || code >= 500,
        }
    }

    fn timed_out(after: std::time::Duration) -> Self {
        StorageError { status: None, message: format!("no answer within {} s", after.as_secs()) }
    }
}

impl EvidenceBucket {
    /// A client of the Cloud Storage API at `endpoint` with `credentials` (ADC when `None`);
    /// calls are retried inside `retry`.
    pub async fn new(
        endpoint: &str,
        credentials: Option<Credentials>,
        retry: RetryBudget,
    ) -> Result<EvidenceBucket, String> {
        let mut builder = Storage::builder().with_endpoint(endpoint).with_retry_policy(NeverRetry);
        if let Some(c) = credentials {
            builder = builder.with_credentials(c);
        }
        let client = builder.build().await.map_err(|e| format!("Cloud Storage client: {e}"))?;
        Ok(EvidenceBucket { client, retry })
    }

    /// Writes `content` as `object` unless the object exists.
    pub async fn write(&self, object: &EvidenceObject<'_>, content: Bytes) -> Result<Written, ExecError> {
        let bucket = format!("projects/_/buckets/{}", object.bucket);
        let what = format!("write gs://{}/{}", object.bucket, object.name);
        // Sent with the object's metadata, so Cloud Storage refuses bytes that did not arrive as
        // sent (computed on the fly, it would come in a trailing part that not every
        // implementation of the API reads).
        let crc = crc32c::crc32c(&content);
        let written = with_retries(&self.retry, "storage", || {
            // Boxed: the client's upload future is large, too large for a worker's stack in a
            // debug build once nested in a step's.
            let write = Box::pin(
                self.client
                    .write_object(bucket.clone(), object.name, content.clone())
                    .set_if_generation_match(0)
                    .set_content_type(object.content_type)
                    .set_metadata(object.metadata.clone())
                    .with_known_crc32c(crc)
                    .send_unbuffered(),
            );
            async move { write.await.map_err(|e| StorageError::from_gax(&e)) }
        })
        .await;
        match written {
            Ok(_) => Ok(Written::Created),
            Err(e) if e.status == Some(412) => {
                let (sha256, bytes) = self.hash_stored(&bucket, object).await?;
                Ok(Written::Existing { sha256, bytes })
            }
            Err(e) => Err(e.into_exec(&what)),
        }
    }

    /// The SHA-256 and size of the stored object, streamed (never held whole).
    async fn hash_stored(&self, bucket: &str, object: &EvidenceObject<'_>) -> Result<(String, u64), ExecError> {
        let what = format!("read back gs://{}/{}", object.bucket, object.name);
        with_retries(&self.retry, "storage", || async {
            let mut read = Box::pin(self.client.read_object(bucket, object.name).send())
                .await
                .map_err(|e| StorageError::from_gax(&e))?;
            let mut hash = Sha256::new();
            let mut bytes = 0u64;
            while let Some(chunk) = read.next().await {
                let chunk = chunk.map_err(|e| StorageError::from_gax(&e))?;
                bytes += chunk.len() as u64;
                hash.update(&chunk);
            }
            Ok((hex(&hash.finalize()), bytes))
        })
        .await
        .map_err(|e: StorageError| e.into_exec(&what))
    }
}

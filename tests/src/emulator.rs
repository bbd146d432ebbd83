//! The real emulators of the Google Cloud SDK, started on free ports for the tests and benchmarks.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use riposte_core::store::Store;

/// A real emulator from the Google Cloud SDK (Firestore or Pub/Sub) on a free port, stopped (with
/// its whole process group: the launchers leave Java running otherwise) when dropped.
pub struct Emulator {
    /// `127.0.0.1:PORT`, the value for `FIRESTORE_EMULATOR_HOST` / `PUBSUB_EMULATOR_HOST`.
    pub host: String,
    child: Child,
}

/// How long an emulator may take to answer after it was started.
const STARTUP: Duration = Duration::from_secs(180);

/// The Firestore emulator (the tests' name for it).
pub type FirestoreEmulator = Emulator;

impl Emulator {
    /// Starts the Firestore emulator and waits until it answers.
    pub async fn start() -> Emulator {
        Emulator::launch("Firestore", "platform/cloud-firestore-emulator/cloud_firestore_emulator", &["start"], "/")
            .await
    }

    /// Starts the Pub/Sub emulator and waits until it answers.
    pub async fn pubsub() -> Emulator {
        Emulator::launch(
            "Pub/Sub",
            "platform/pubsub-emulator/bin/cloud-pubsub-emulator",
            &[],
            "/v1/projects/probe/topics",
        )
        .await
    }

    async fn launch(name: &str, launcher: &str, args: &[&str], probe: &str) -> Emulator {
        use std::os::unix::process::CommandExt as _;
        let sdk = std::env::var("RIPOSTE_GCLOUD_SDK").unwrap_or_else(|_| "/usr/lib/google-cloud-sdk".into());
        let launcher = Path::new(&sdk).join(launcher);
        assert!(
            launcher.exists(),
            "the {name} emulator is missing at {} (google-cloud-cli); set RIPOSTE_GCLOUD_SDK",
            launcher.display()
        );
        // A free port is found by binding and releasing it, so another test can take it before
        // the emulator binds it: the emulator then exits, and is started again on another port.
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
            let mut child = Command::new(&launcher)
                .args(args)
                .args(["--host=127.0.0.1", &format!("--port={port}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("start the {name} emulator: {e}"));
            let host = format!("127.0.0.1:{port}");
            let probe = format!("http://{host}{probe}");
            // A JVM starting on two busy cores (the suite runs tests, Chromium and podman at once)
            // has been seen to take over a minute.
            let deadline = Instant::now() + STARTUP;
            loop {
                if let Ok(r) = reqwest::get(&probe).await
                    && r.status().is_success()
                {
                    return Emulator { host, child };
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                assert!(Instant::now() < deadline, "the {name} emulator did not start within {} s", STARTUP.as_secs());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{}", child.id())]).status();
        }
        panic!("the {name} emulator exited at start three times")
    }

    /// A store on this emulator, in a project of its own (projects are isolated).
    pub fn store(&self, project: &str) -> Arc<dyn Store> {
        Arc::new(riposte_cloud::firestore::FirestoreStore::new(
            &format!("http://{}", self.host),
            project,
            riposte_cloud::firestore::Auth::Emulator,
        ))
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // `--` so the negative pid is read as a process group, not as a signal option.
        let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.wait();
    }
}

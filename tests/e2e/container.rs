//! The container image, built from `infra/Dockerfile` and run with podman (daemonless: no Docker
//! engine runs here). No registry is reachable, so the build substitutes what it would pull, as
//! the Dockerfile's build arguments allow: the runtime base is a stand-in for distroless made from
//! the same Debian 12 packages (`infra/container/distroless-standin.sh`), and the binary is the one
//! `cargo build --profile image` made (`BINARY_FROM=prebuilt`). Every step after those is the
//! Dockerfile's own. Test names say "on the distroless stand-in".

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use riposte_core::approval::Keys;
use serde_json::Value;

use crate::helpers::{FirestoreEmulator, fixture, workspace};

/// The tag the tests build; a user's build names its own.
const IMAGE: &str = "localhost/riposte:e2e";
/// Cloud Run's grace period between SIGTERM and SIGKILL.
const CLOUD_RUN_GRACE: Duration = Duration::from_secs(10);

/// `podman …` with the settings for a machine without systemd (infra/container/containers.conf).
pub(crate) fn podman() -> Command {
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_CONF", workspace().join("infra/container/containers.conf"));
    cmd
}

/// Runs `cmd`, asserting it succeeds; its stdout.
fn succeed(cmd: &mut Command) -> String {
    let out: Output = cmd.output().unwrap_or_else(|e| {
        panic!("{cmd:?} did not start ({e}): run ./infra/test.sh, which installs Debian's podman and runc")
    });
    assert!(out.status.success(), "{cmd:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf8")
}

/// Builds the image once per test run: the binary (`infra/test.sh` built it already, so this is
/// usually up to date), the stand-in base, then `podman build` of infra/Dockerfile.
pub(crate) fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = workspace();
        succeed(Command::new("cargo").current_dir(&root).args([
            "build",
            "--profile",
            "image",
            "--locked",
            "-p",
            "riposte",
        ]));
        let base = succeed(&mut Command::new(root.join("infra/container/distroless-standin.sh")));
        succeed(podman().current_dir(&root).args([
            "build",
            "--quiet",
            "--file=infra/Dockerfile",
            "--build-arg=BINARY_FROM=prebuilt",
            &format!("--build-arg=RUNTIME_IMAGE={}", base.trim()),
            &format!("--tag={IMAGE}"),
            ".",
        ]));
    });
    IMAGE
}

/// A container removed (with its state) when the test ends.
pub(crate) struct Container {
    pub(crate) name: String,
}

impl Container {
    /// A name unique to this test run, for a container removed when this is dropped.
    pub(crate) fn removed_on_drop(purpose: &str) -> Container {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Container { name: format!("riposte-e2e-{purpose}-{}-{n}", std::process::id()) }
    }

    /// `podman run --detach` of the image on the host's network, with `args` before the image.
    fn run(args: &[&str]) -> Container {
        let container = Container::removed_on_drop("serve");
        succeed(
            podman().args(["run", "--detach", "--network=host", "--name", &container.name]).args(args).arg(image()),
        );
        container
    }

    fn logs(&self) -> String {
        let out = podman().args(["logs", &self.name]).output().expect("podman logs");
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }

    /// The container's main process, as the host sees it.
    fn pid(&self) -> u32 {
        succeed(podman().args(["inspect", "--format={{.State.Pid}}", &self.name])).trim().parse().expect("a pid")
    }

    /// Sends SIGTERM as Cloud Run does when it scales in; the exit code and how long it took.
    fn terminate(&self) -> (i32, Duration) {
        let sent = Instant::now();
        succeed(podman().args(["kill", "--signal=TERM", &self.name]));
        let code = succeed(podman().args(["wait", &self.name]));
        (code.trim().parse().expect("an exit code"), sent.elapsed())
    }

    /// Waits until `GET /healthz` answers 200 on `port`, with the container's logs if it never does.
    async fn healthy(&self, port: u16) -> String {
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if reqwest::get(format!("{url}/healthz")).await.is_ok_and(|r| r.status() == 200) {
                return url;
            }
            assert!(Instant::now() < deadline, "/healthz never answered:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "--force", "--time=0", &self.name]).output();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The image's file system, as `tar` lists it (`podman export` of a created container) and unpacked.
fn exported_files(dir: &Path) -> (String, PathBuf) {
    let created = Container::removed_on_drop("export");
    succeed(podman().args(["create", "--name", &created.name, image()]));
    let archive = dir.join("image.tar");
    succeed(podman().args(["export", "--output"]).arg(&archive).arg(&created.name));
    let listing =
        succeed(Command::new("tar").arg("--list").arg("--verbose").arg("--numeric-owner").arg("--file").arg(&archive));
    let root = dir.join("root");
    std::fs::create_dir(&root).expect("mkdir");
    succeed(Command::new("tar").arg("--extract").arg("--file").arg(&archive).arg("--directory").arg(&root));
    (listing, root)
}

#[test]
fn on_the_distroless_stand_in_the_image_runs_the_stripped_binary_as_nonroot_with_no_shell() {
    let config = succeed(podman().args(["image", "inspect", "--format={{json .Config}}", image()]));
    let config: Value = serde_json::from_str(&config).expect("json");
    assert_eq!(config["User"], "65532:65532", "{config}");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/usr/local/bin/riposte"]));
    assert_eq!(config["Cmd"], serde_json::json!(["serve"]));

    let dir = tempfile::tempdir().expect("tempdir");
    let (listing, root) = exported_files(dir.path());
    let names: Vec<&str> = listing.lines().filter_map(|l| l.split_whitespace().last()).collect();
    for shell in ["sh", "bash", "dash", "ash", "zsh", "busybox"] {
        let found: Vec<_> = names.iter().filter(|n| n.rsplit('/').next() == Some(shell)).collect();
        assert!(found.is_empty(), "a shell in the image: {found:?}");
    }
    // Owned by root: the process (uid 65532) cannot replace its own binary or policy.
    for path in ["usr/local/bin/riposte", "etc/riposte/policy.yaml"] {
        let line = listing.lines().find(|l| l.ends_with(&format!(" {path}"))).unwrap_or_else(|| panic!("no {path}"));
        assert!(line.contains(" 0/0 "), "{line}");
    }
    let home = listing.lines().find(|l| l.ends_with(" home/nonroot/")).expect("a home");
    assert!(home.contains(" 65532/65532 "), "the embedded store writes there: {home}");

    let binary = std::fs::read(root.join("usr/local/bin/riposte")).expect("the binary");
    assert!(binary.starts_with(b"\x7fELF"));
    let has = |needle: &[u8]| binary.windows(needle.len()).any(|w| w == needle);
    assert!(!has(b".symtab\0"), "the binary keeps its symbol table");
    let bundle = std::fs::read_to_string(root.join("etc/ssl/certs/ca-certificates.crt")).expect("CA bundle");
    assert!(bundle.matches("-----BEGIN CERTIFICATE-----").count() > 100, "rustls reads the system roots");
    assert!(root.join("usr/share/zoneinfo/UTC").exists() && root.join("etc/services").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_distroless_stand_in_the_container_reads_port_opens_an_incident_and_exits_0_on_sigterm() {
    tokio::task::spawn_blocking(image).await.expect("image");
    let port = free_port();
    let container = Container::run(&["--env", &format!("PORT={port}")]);
    let url = container.healthy(port).await;

    let status = std::fs::read_to_string(format!("/proc/{}/status", container.pid())).expect("status");
    let uids = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid");
    assert_eq!(uids.split_whitespace().skip(1).collect::<Vec<_>>(), ["65532"; 4], "{uids}");

    let client = reqwest::Client::new();
    let answer: Value = client
        .post(format!("{url}/v1/falco"))
        .header("content-type", "application/json")
        .body(fixture("falco/drop-exec-sidekick-customfields.json"))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["duplicate"], false, "{answer}");
    let id = answer["incident_id"].as_str().expect("an incident").to_string();
    let incident: Value =
        client.get(format!("{url}/v1/incidents/{id}")).send().await.expect("get").json().await.expect("json");
    assert_eq!(incident["policy"], "crypto-mining-containment", "{incident}");
    let logs = container.logs();
    assert!(logs.contains(&format!("riposte incident {id} opened")), "the console notifier: {logs}");

    let (code, took) = tokio::task::spawn_blocking(move || container.terminate()).await.expect("terminate");
    assert_eq!(code, 0);
    assert!(took < CLOUD_RUN_GRACE, "SIGTERM to exit took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_distroless_stand_in_a_cloud_run_like_container_starts_on_firestore_and_takes_only_authenticated_alerts()
{
    tokio::task::spawn_blocking(image).await.expect("image");
    let firestore = FirestoreEmulator::start().await;
    // As terraform deploys the ingest service: the policy in a volume of its own (mounted
    // read-only, readable by uid 65532), secrets as plain variables (Cloud Run resolves them).
    let dir = tempfile::tempdir().expect("tempdir");
    let policy_dir = dir.path().join("policy");
    std::fs::create_dir(&policy_dir).expect("mkdir");
    std::fs::write(policy_dir.join("policy.yaml"), riposte::EXAMPLE_POLICY).expect("policy");
    use std::os::unix::fs::PermissionsExt as _;
    for (path, mode) in [(dir.path(), 0o755), (policy_dir.as_path(), 0o755), (&policy_dir.join("policy.yaml"), 0o644)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let keys = Keys::generate("container-test").expect("key");
    let port = free_port();
    let env = [
        format!("PORT={port}"),
        "K_SERVICE=riposte-ingest".into(),
        "RIPOSTE_ROLE=ingest".into(),
        "RIPOSTE_STORE=firestore".into(),
        "RIPOSTE_FIRESTORE_PROJECT=shop-prod".into(),
        "GOOGLE_CLOUD_PROJECT=shop-prod".into(),
        format!("FIRESTORE_EMULATOR_HOST={}", firestore.host),
        "RIPOSTE_LOG_FORMAT=json".into(),
        "RIPOSTE_PUBLIC_URL=https://approve.example.com".into(),
        "RIPOSTE_POLICY=/etc/riposte-policy/policy.yaml".into(),
        "RIPOSTE_FALCO_TOKEN=falco-token-for-the-container-test".into(),
        "RIPOSTE_MONITORING_USER=monitoring".into(),
        "RIPOSTE_MONITORING_PASSWORD=monitoring-password-for-the-container-test".into(),
        "RIPOSTE_PUBSUB_TOKEN=pubsub-token-for-the-container-test".into(),
        format!("RIPOSTE_SIGNING_KEY={}", keys.signing),
    ];
    let mut args: Vec<String> = vec!["--volume".into(), format!("{}:/etc/riposte-policy:ro", policy_dir.display())];
    for e in &env {
        args.extend(["--env".into(), e.clone()]);
    }
    let container = Container::run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let url = container.healthy(port).await;

    let falco = fixture("falco/drop-exec-sidekick-customfields.json");
    let client = reqwest::Client::new();
    let post = |auth: Option<&'static str>| {
        let mut request = client.post(format!("{url}/v1/falco")).body(falco.clone());
        if let Some(token) = auth {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(post(None).await.expect("post").status(), 401, "managed: every intake needs its credential");
    let answer: Value =
        post(Some("falco-token-for-the-container-test")).await.expect("post").json().await.expect("json");
    let id = answer["incident_id"].as_str().unwrap_or_else(|| panic!("no incident: {answer}")).to_string();
    let stored = firestore.store("shop-prod").get(&id).await.expect("read").expect("the incident is in Firestore");
    assert_eq!(stored.policy, "crypto-mining-containment");

    // Log records are one JSON object per line with the severity Cloud Logging reads (the example
    // policy's console notifier prints its text beside them); no secret is ever printed.
    let logs = container.logs();
    let records: Vec<Value> = logs
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(records.iter().all(|r| r["severity"].is_string()), "{logs}");
    assert!(records.iter().any(|r| r["message"] == "riposte is serving"), "{logs}");
    assert!(records.iter().any(|r| r["message"] == "incident opened" && r["incident"] == id.as_str()), "{logs}");
    assert!(!logs.contains("token-for-the-container-test") && !logs.contains(&keys.signing[7..]), "{logs}");
    let (code, took) = tokio::task::spawn_blocking(move || container.terminate()).await.expect("terminate");
    assert_eq!(code, 0);
    assert!(took < CLOUD_RUN_GRACE, "SIGTERM to exit took {took:?}");
}

/// The dependency layer of the image's builder stage stubs every target the manifests name, so
/// that Cargo can build the dependencies before the sources are copied (a target missing from a
/// hand-kept list once broke that layer).
#[test]
fn the_image_dependency_layer_stubs_every_target_of_the_workspace() {
    let root = workspace();
    let dir = tempfile::tempdir().expect("tempdir");
    let metadata = |at: &Path| -> Value {
        let out = succeed(Command::new("cargo").current_dir(at).args([
            "metadata",
            "--offline",
            "--no-deps",
            "--format-version=1",
        ]));
        serde_json::from_str(&out).expect("json")
    };
    let manifests: Vec<String> = metadata(&root)["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| p["manifest_path"].as_str().expect("path").to_string())
        .collect();
    for file in ["Cargo.toml", "Cargo.lock"] {
        std::fs::copy(root.join(file), dir.path().join(file)).expect("copy");
    }
    for manifest in &manifests {
        let relative = Path::new(manifest).strip_prefix(&root).expect("in the workspace");
        std::fs::create_dir_all(dir.path().join(relative).parent().expect("dir")).expect("mkdir");
        std::fs::copy(manifest, dir.path().join(relative)).expect("copy");
    }
    succeed(Command::new("sh").current_dir(dir.path()).arg(root.join("infra/container/stub-workspace.sh")));

    // Cargo sees the same targets (inferred ones only when their file exists), each with a file.
    let targets = |metadata: &Value| -> std::collections::BTreeSet<String> {
        let packages = metadata["packages"].as_array().expect("packages");
        let targets =
            packages.iter().flat_map(|p| p["targets"].as_array().expect("targets").iter().map(move |t| (p, t)));
        targets
            .map(|(p, t)| {
                let source = t["src_path"].as_str().expect("src_path");
                assert!(Path::new(source).is_file(), "no file for {source}");
                format!("{} {} {}", p["name"], t["kind"], t["name"])
            })
            .collect()
    };
    let real = targets(&metadata(&root));
    assert!(real.len() >= 12, "libraries, the binaries, the test binary and the benchmarks: {real:?}");
    assert_eq!(targets(&metadata(dir.path())), real);
}

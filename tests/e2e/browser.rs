//! The approval page in a real headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`, which ./infra/test.sh installs when missing): open the link, see the steps,
//! click Approve, see the outcome; a second, stale tab's click says "already decided" and nothing
//! runs twice.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use riposte_core::incident::StepStatus;
use serde_json::json;

use crate::helpers::{eventually, fixture, spawn_app};

pub(crate) struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(program: &str, env: &str) -> String {
    std::env::var(env).ok().filter(|p| !p.is_empty()).unwrap_or_else(|| {
        for dir in ["/usr/bin", "/usr/lib/chromium", "/usr/local/bin"] {
            let p = format!("{dir}/{program}");
            if std::path::Path::new(&p).exists() {
                return p;
            }
        }
        panic!(
            "{program} not found: run ./infra/test.sh (it installs Debian's chromium and chromium-driver) or set {env}"
        )
    })
}

pub(crate) async fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let child = Command::new(find("chromedriver", "RIPOSTE_CHROMEDRIVER"))
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    eventually(|| {
        let status = format!("{url}/status");
        async move { reqwest::get(&status).await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
    })
    .await;
    Driver { child, url }
}

/// A headless Chromium session with its own profile directory (two sessions cannot share one),
/// in a phone-sized window.
async fn browser(driver: &Driver) -> (Client, tempfile::TempDir) {
    browser_sized(driver, (430, 1400)).await
}

/// [`browser`] in a window of `(width, height)`.
pub(crate) async fn browser_sized(driver: &Driver, (width, height): (u32, u32)) -> (Client, tempfile::TempDir) {
    let profile = tempfile::tempdir().expect("profile");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": find("chromium", "RIPOSTE_CHROMIUM"),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", format!("--window-size={width},{height}"),
                     format!("--user-data-dir={}", profile.path().display())],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session in headless Chromium");
    (client, profile)
}

/// Takes a screenshot (a PNG); keeps it in `$RIPOSTE_SCREENSHOT_DIR` when set (docs/ uses them).
pub(crate) async fn save_screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"));
    if let Ok(dir) = std::env::var("RIPOSTE_SCREENSHOT_DIR") {
        std::fs::write(std::path::Path::new(&dir).join(name), &png).expect("write screenshot");
    }
}

pub(crate) async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css)).await.expect(css).text().await.expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_in_a_real_browser_runs_the_steps_once() {
    let app = spawn_app(&[]).await;
    let id = app.post_falco(fixture("falco/drop-exec-sidekick-customfields.json")).await;
    let incident = app.store.get(&id).await.expect("get").expect("incident");
    let link = app.keys.links(&incident, &app.url, jiff::Timestamp::now()).expect("links").remove(0).url;

    let driver = start_driver().await;
    let (first, _first_profile) = browser(&driver).await;
    let (second, _second_profile) = browser(&driver).await;
    first.goto(&link).await.expect("open link");
    second.goto(&link).await.expect("open link in a second window");

    // The page shows the incident, the destructive steps and their targets.
    assert_eq!(text(&first, "#approval-state").await, "waiting for approval");
    let steps: Vec<String> = {
        let mut out = Vec::new();
        for row in first.find_all(Locator::Css("tr.step")).await.expect("steps") {
            out.push(row.text().await.expect("text"));
        }
        out
    };
    assert_eq!(steps.len(), 4, "{steps:?}");
    assert!(
        steps[0].starts_with("drain_node") && steps[0].contains("gke-prod-eu-default-pool-5c1d2e3f-k9zt"),
        "{steps:?}"
    );
    assert!(steps[1].contains("shop/api-7d9f8b6c5-x2lqp"), "{steps:?}");

    save_screenshot(&first, "approval-page.png").await;
    first.find(Locator::Css("button[value=approve]")).await.expect("approve button").click().await.expect("click");
    // After the POST the browser lands back on the page, which refreshes until the steps are done.
    let outcome = eventually(|| {
        let first = first.clone();
        async move {
            // One read of the page: the page refreshes itself, and reading the state and the body
            // separately could see two different loads (or one half-loaded).
            let body = first.source().await.ok()?;
            let approved = body.contains("id=\"approval-state\">approved<");
            (approved && body.contains("id=\"decided\"") && !body.contains(">pending<") && !body.contains(">running<"))
                .then_some(body)
        }
    })
    .await;
    assert!(outcome.contains("Already decided: approved by approver-1"));
    save_screenshot(&first, "approval-outcome.png").await;

    // The stale second window still shows the buttons; its click is refused and runs nothing.
    second.find(Locator::Css("button[value=approve]")).await.expect("stale button").click().await.expect("click");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(second.source().await.expect("source").contains("already decided"));

    let done = app.store.get(&id).await.expect("get").expect("incident");
    assert!(done.steps.iter().filter(|s| s.gated).all(|s| s.status == StepStatus::Done && s.attempts == 1));
    assert_eq!(done.approval.expect("approval").decisions.len(), 1);
    first.close().await.expect("close");
    second.close().await.expect("close");
}

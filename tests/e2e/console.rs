//! The incident console in a real headless Chromium (as the approval page): the list shows the
//! incident and filters, the timeline shows every step, its requests and the approver, and alert
//! text stays text. Who may open it off the loopback interface is checked over plain HTTP.

use fantoccini::{Client, Locator};
use riposte_core::incident::StepStatus;
use serde_json::Value;

use crate::browser::{browser_sized, save_screenshot, start_driver, text};
use crate::helpers::{FakeGoogleKeys, eventually, fixture, spawn_app, spawn_app_reachable_from_others};

const HOSTILE: &str = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>";

async fn rows(c: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for row in c.find_all(Locator::Css(css)).await.expect(css) {
        out.push(row.text().await.expect("text"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_lists_the_incident_and_its_timeline_shows_every_step_and_the_approver_in_a_real_browser() {
    let app = spawn_app(&[]).await;
    let mut alert: Value =
        serde_json::from_slice(&fixture("falco/drop-exec-sidekick-customfields.json")).expect("json");
    alert["output"] = Value::String(format!("xmrig started {HOSTILE}"));
    let id = app.post_falco(alert.to_string().into_bytes()).await;
    // The same alert again, and through the log sink: one incident, three alerts.
    assert_eq!(app.post_falco(alert.to_string().into_bytes()).await, id);
    let r = reqwest::Client::new()
        .post(format!("{}/v1/pubsub", app.url))
        .body(fixture("pubsub/push-falco-container-log.json"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.json::<Value>().await.expect("json")["incident_id"], Value::String(id.clone()));
    app.automatic_steps_done(&id).await;
    let incident = app.store.get(&id).await.expect("get").expect("incident");
    let link = app.keys.links(&incident, &app.url, jiff::Timestamp::now()).expect("links").remove(0).url;

    let driver = start_driver().await;
    let (c, _profile) = browser_sized(&driver, (1280, 2400)).await;
    // Approve in the browser, so that the timeline has an approver and the approved steps ran.
    c.goto(&link).await.expect("open the approval link");
    c.find(Locator::Css("button[value=approve]")).await.expect("approve").click().await.expect("click");
    eventually(|| {
        let store = app.store.clone();
        let id = id.clone();
        async move {
            let i = store.get(&id).await.ok()??;
            i.steps.iter().all(|s| s.status == StepStatus::Done).then_some(())
        }
    })
    .await;

    c.goto(&format!("{}/console", app.url)).await.expect("open the console");
    let listed = rows(&c, "tr.incident").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].contains(&id) && listed[0].contains("crypto-mining-containment"), "{listed:?}");
    assert!(listed[0].contains("prod-eu") && listed[0].contains("done"), "cluster and state: {listed:?}");
    save_screenshot(&c, "console-list.png").await;

    // The filter form (GET, no script): a state with nothing in it, then the incident's policy.
    let state = c.find(Locator::Css("select[name=state]")).await.expect("state");
    state.select_by_value("awaiting_approval").await.expect("select");
    c.find(Locator::Css(".filter button")).await.expect("filter").click().await.expect("click");
    // The form's GET has landed when the page says what it filtered.
    let shown = eventually(|| {
        let c = c.clone();
        async move {
            let url = c.current_url().await.ok()?;
            if !url.as_str().contains("state=awaiting_approval") {
                return None;
            }
            c.find(Locator::Css("#shown")).await.ok()?.text().await.ok()
        }
    })
    .await;
    assert!(shown.starts_with("0 of the newest 1"), "{shown}");
    assert!(rows(&c, "tr.incident").await.is_empty());
    c.goto(&format!("{}/console?policy=crypto-mining-containment&state=done", app.url)).await.expect("filter");
    assert_eq!(rows(&c, "tr.incident").await.len(), 1);

    c.goto(&format!("{}/console", app.url)).await.expect("back");
    c.find(Locator::LinkText(&id)).await.expect("the incident's link").click().await.expect("click");
    assert_eq!(text(&c, "#incident-state").await, "done");
    let steps = rows(&c, "section.console-step h3").await;
    let planned: Vec<&str> = incident.steps.iter().map(|s| s.action.name()).collect();
    assert_eq!(steps.len(), planned.len(), "{steps:?}");
    for (shown, action) in steps.iter().zip(&planned) {
        assert!(shown.contains(action), "{shown} for {action}");
    }
    let statuses = rows(&c, "td.step-status").await;
    assert!(statuses.iter().all(|s| s == "done"), "{statuses:?}");
    // What each step sent (the dry run: what it would send) is there, with its URL.
    let source = c.source().await.expect("source");
    assert!(source.contains("Requests it would send (dry run)"), "the requests of each step");
    let first_request = &incident.steps[0].requests[0];
    assert!(source.contains(&first_request.url.replace('&', "&amp;")), "{}", first_request.url);
    let decisions = rows(&c, "tr.decision").await;
    assert_eq!(decisions.len(), 1);
    assert!(decisions[0].starts_with("approver-1 approved"), "{decisions:?}");
    let alerts = text(&c, "#alerts").await;
    assert!(alerts.contains("Alerts 3"), "{alerts}");
    // Counted from the intake log's lines: the webhook's two and the log sink's one are Falco's.
    assert!(alerts.contains("Sources falco: 3"), "{alerts}");

    // The attacker's markup is shown as text: no element was made of it.
    assert!(text(&c, "#summary").await.contains(HOSTILE));
    assert!(c.find_all(Locator::Css("main script, main img")).await.expect("find").is_empty());
    assert_ne!(c.title().await.expect("title"), "pwned");
    save_screenshot(&c, "console-incident.png").await;
    c.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_the_loopback_interface_the_console_needs_identity_aware_proxy() {
    let client = reqwest::Client::new();
    let open = spawn_app(&[]).await;
    let id = open.post_falco(fixture("falco/drop-exec-sidekick-customfields.json")).await;
    let page = client.get(format!("{}/console/incidents/{id}", open.url)).send().await.expect("get");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().expect("csp").to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(client.get(format!("{}/console?state=%3Cx%3E", open.url)).send().await.expect("get").status(), 400);
    assert_eq!(client.get(format!("{}/console?color=red", open.url)).send().await.expect("get").status(), 400);
    assert_eq!(client.get(format!("{}/console/incidents/..%2Fetc", open.url)).send().await.expect("get").status(), 400);
    assert_eq!(client.get(format!("{}/console/incidents/nope", open.url)).send().await.expect("get").status(), 404);

    // Reachable from others without IAP: there is no console.
    let closed = spawn_app_reachable_from_others(&[]).await;
    assert_eq!(client.get(format!("{}/console", closed.url)).send().await.expect("get").status(), 404);
    // Behind IAP (a fake: its assertions signed by a fake Google key): a request without IAP's
    // signed assertion, or with one for another audience, is refused as on the approval pages; a
    // signed-in person reads.
    const AUDIENCE: &str = "/projects/481516234/global/backendServices/42";
    let google = FakeGoogleKeys::start("iap-console").await;
    let iap = spawn_app_reachable_from_others(&[
        ("RIPOSTE_IAP_AUDIENCE", AUDIENCE),
        ("RIPOSTE_IAP_JWKS_URL", google.jwks_url.as_str()),
    ])
    .await;
    let assertion = |audience: &str| {
        let now = jiff::Timestamp::now().as_second();
        google.sign(
            "iap-console",
            &serde_json::json!({"iss": riposte_approve::IAP_ISSUER, "aud": audience, "email": "alice@example.com",
                "sub": "accounts.google.com:alice", "iat": now, "exp": now + 600}),
        )
    };
    let url = format!("{}/console", iap.url);
    assert_eq!(client.get(&url).send().await.expect("get").status(), 401);
    let other = client.get(&url).header("x-goog-iap-jwt-assertion", assertion("/projects/1/other")).send().await;
    assert_eq!(other.expect("get").status(), 401);
    let signed_in = client.get(&url).header("x-goog-iap-jwt-assertion", assertion(AUDIENCE)).send().await;
    assert_eq!(signed_in.expect("get").status(), 200);
}

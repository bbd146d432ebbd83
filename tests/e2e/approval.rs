//! Approval links end to end over HTTP: a GET never changes anything, the decision is a
//! same-origin POST, the first decision wins, refused links change nothing, the two-person rule.

use jiff::Timestamp;
use reqwest::StatusCode;
use riposte_core::approval::{ApprovalClaims, ISSUER, Keys};
use riposte_core::incident::{ApprovalState, Incident, StepStatus};
use riposte_core::notify::Notifiers;
use riposte_core::policy::PolicySet;
use serde_json::Value;

use crate::helpers::{FakeGoogleKeys, TestApp, eventually, expire_approval_now, fixture, spawn_app, spawn_app_with};

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// Posts the crypto-mining fixture and waits until its automatic steps are done.
async fn open_incident(app: &TestApp) -> Incident {
    let id = app.post_falco(fixture("falco/drop-exec-sidekick-customfields.json")).await;
    app.automatic_steps_done(&id).await
}

async fn decide(link: &str, origin: Option<&str>, decision: &str) -> (StatusCode, String) {
    let mut r = client()
        .post(link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("decision={decision}"));
    if let Some(o) = origin {
        r = r.header("origin", o);
    }
    let r = r.send().await.expect("post");
    (r.status(), r.text().await.unwrap_or_default())
}

async fn state(app: &TestApp, id: &str) -> Incident {
    app.store.get(id).await.expect("get").expect("incident")
}

fn links(app: &TestApp, incident: &Incident) -> Vec<String> {
    app.keys.links(incident, &app.url, Timestamp::now()).expect("links").into_iter().map(|l| l.url).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prefetching_changes_nothing_and_concurrent_clicks_execute_once() {
    let app = spawn_app(&[]).await;
    let incident = open_incident(&app).await;
    let links = links(&app, &incident);
    assert_eq!(links.len(), 1, "one approver slot when the policy lists nobody and needs one approval");
    let link = &links[0];

    // Chat apps and mail scanners prefetch: ten GETs change nothing.
    for _ in 0..10 {
        let r = client().get(link).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["cache-control"], "no-store");
        let html = r.text().await.expect("html");
        assert!(
            html.contains("drain_node") && html.contains("value=\"approve\"") && html.contains("waiting for approval")
        );
    }
    let after_gets = state(&app, &incident.id).await;
    assert_eq!(after_gets.approval, incident.approval);
    assert!(after_gets.steps.iter().filter(|s| s.gated).all(|s| s.status == StepStatus::AwaitingApproval));

    // Cross-site or origin-less POSTs are refused.
    assert_eq!(decide(link, None, "approve").await.0, StatusCode::FORBIDDEN);
    assert_eq!(decide(link, Some("https://evil.example.com"), "approve").await.0, StatusCode::FORBIDDEN);
    assert_eq!(decide(link, Some(&app.url), "maybe").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(state(&app, &incident.id).await.approval, incident.approval, "refusals change nothing");

    // A double click, eight times over, at once: one decision, one execution.
    let mut clicks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (link, origin) = (link.clone(), app.url.clone());
        clicks.spawn(async move { decide(&link, Some(&origin), "approve").await });
    }
    let mut statuses = Vec::new();
    while let Some(r) = clicks.join_next().await {
        statuses.push(r.expect("task").0);
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::SEE_OTHER).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 7, "{statuses:?}");

    let done = eventually(|| {
        let (store, id) = (app.store.clone(), incident.id.clone());
        async move {
            let i = store.get(&id).await.ok()??;
            i.steps.iter().filter(|s| s.gated).all(|s| s.status == StepStatus::Done).then_some(i)
        }
    })
    .await;
    assert!(done.steps.iter().all(|s| s.attempts == 1), "every step ran exactly once");
    let approval = done.approval.as_ref().expect("approval");
    assert_eq!((approval.state, approval.decisions.len()), (ApprovalState::Approved, 1));
    let html = client().get(link).send().await.expect("get").text().await.expect("html");
    assert!(html.contains("Already decided: approved by approver-1"), "{html}");
    assert!(!html.contains("value=\"approve\""), "no buttons once decided");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_links_get_a_clear_page_and_change_nothing() {
    let app = spawn_app(&[]).await;
    let incident = open_incident(&app).await;
    let approval = incident.approval.clone().expect("approval");
    let base = ApprovalClaims {
        iss: ISSUER.into(),
        aud: app.url.clone(),
        sub: "approver-1".into(),
        inc: incident.id.clone(),
        plan: approval.plan_hash.clone(),
        iat: Timestamp::now().as_second(),
        exp: approval.expires_at.as_second(),
        jti: "t".into(),
    };
    let link = |keys: &Keys, f: &dyn Fn(&mut ApprovalClaims)| {
        let mut c = base.clone();
        f(&mut c);
        format!("{}/approvals/{}", app.url, keys.mint(&c).expect("mint"))
    };
    let claims = |f: &dyn Fn(&mut ApprovalClaims)| link(&app.keys, f);
    let good = claims(&|_| {});
    let other = Keys::generate("test").expect("key");
    let forged = link(&Keys::load(Some(&other.signing), &[], &app.url).expect("keys"), &|_| {});
    let cases = [
        (claims(&|c| c.exp = Timestamp::now().as_second() - 5), StatusCode::GONE, "expired"),
        (
            claims(&|c| c.aud = "https://approve.other.example".into()),
            StatusCode::FORBIDDEN,
            "another riposte deployment",
        ),
        (claims(&|c| c.inc = "20261122-000000-00000000".into()), StatusCode::NOT_FOUND, "no incident"),
        (claims(&|c| c.plan = "0".repeat(64)), StatusCode::CONFLICT, "plan changed"),
        (forged, StatusCode::FORBIDDEN, "signature does not match"),
        (format!("{}/approvals/not.a.token", app.url), StatusCode::FORBIDDEN, "malformed"),
    ];
    for (link, status, text) in cases {
        let r = client().get(&link).send().await.expect("get");
        assert_eq!(r.status(), status, "{text}");
        assert!(r.text().await.expect("html").contains(text), "{text}");
        let (post_status, _) = decide(&link, Some(&app.url), "approve").await;
        assert_eq!(post_status, status, "POST {text}");
    }
    assert_eq!(state(&app, &incident.id).await.approval, incident.approval, "nothing changed");

    // A decision after the request expired: 410 and a page that says so.
    let id = incident.id.clone();
    expire_approval_now(&app.store, &id).await;
    let (status, body) = decide(&good, Some(&app.url), "approve").await;
    assert_eq!(status, StatusCode::GONE);
    assert!(body.contains("expired"), "{body}");
    app.store
        .update(
            &id,
            Box::new(move |inc| {
                if let Some(a) = inc.approval.as_mut() {
                    a.expires_at = approval.expires_at;
                    a.state = ApprovalState::Pending;
                }
                for s in inc.steps.iter_mut().filter(|s| s.gated) {
                    s.status = StepStatus::AwaitingApproval;
                }
                true
            }),
        )
        .await
        .expect("restore");

    // A plan that changes after the link was made (a re-created target) invalidates the link.
    let id = incident.id.clone();
    app.store
        .update(
            &id,
            Box::new(|inc| {
                if let Some(t) = inc.steps[7].target.as_mut() {
                    *t = riposte_core::target::Target::resolve(
                        riposte_core::action::TargetKind::Pod,
                        &riposte_core::alert::ResourceHints {
                            project: "shop-prod".parse().ok(),
                            location: "europe-west1".parse().ok(),
                            cluster: "prod-eu".parse().ok(),
                            namespace: "shop".parse().ok(),
                            pod: "api-7d9f8b6c5-other".parse().ok(),
                            ..Default::default()
                        },
                        &riposte_core::locate::Placement::default(),
                    )
                    .expect("target");
                }
                true
            }),
        )
        .await
        .expect("update");
    let (status, body) = decide(&good, Some(&app.url), "approve").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("plan changed"));
    assert!(
        state(&app, &incident.id)
            .await
            .steps
            .iter()
            .filter(|s| s.gated)
            .all(|s| s.status == StepStatus::AwaitingApproval)
    );
}

const IAP_AUDIENCE: &str = "/projects/481516234/global/backendServices/42";

/// A fake Identity-Aware Proxy (IAP itself cannot run here): assertions signed by a fake Google key.
struct FakeIap {
    jwks_url: String,
    google: FakeGoogleKeys,
}

impl FakeIap {
    async fn start() -> FakeIap {
        let google = FakeGoogleKeys::start("iap-1").await;
        FakeIap { jwks_url: google.jwks_url.clone(), google }
    }

    fn assertion(&self, email: &str, audience: &str, kid: &str) -> String {
        let now = Timestamp::now().as_second();
        self.google.sign(
            kid,
            &serde_json::json!({"iss": riposte_approve::IAP_ISSUER, "aud": audience, "email": email,
                "sub": format!("accounts.google.com:{email}"), "iat": now, "exp": now + 600}),
        )
    }
}

async fn decide_as(
    link: &str,
    origin: &str,
    decision: &str,
    assertion: Option<&str>,
    plain_email: Option<&str>,
) -> (StatusCode, String) {
    let mut r = client()
        .post(link)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", origin)
        .body(format!("decision={decision}"));
    if let Some(a) = assertion {
        r = r.header("x-goog-iap-jwt-assertion", a);
    }
    if let Some(e) = plain_email {
        r = r.header("x-goog-authenticated-user-email", format!("accounts.google.com:{e}"));
    }
    let r = r.send().await.expect("post");
    (r.status(), r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_fake_iap_the_two_person_rule_needs_two_verified_people() {
    let iap = FakeIap::start().await;
    let policies = PolicySet::from_yaml(&riposte::EXAMPLE_POLICY.replace(
        "    approval:\n      expires_in: 30m\n      required: 1\n",
        "    approval:\n      expires_in: 30m\n      approvers: [alice@example.com, bob@example.com]\n      required: 2\n",
    ))
    .expect("policy");
    assert_eq!(policies.policies[0].approval.required, 2, "the example policy was edited as intended");
    let iap_settings = [("RIPOSTE_IAP_AUDIENCE", IAP_AUDIENCE), ("RIPOSTE_IAP_JWKS_URL", iap.jwks_url.as_str())];
    let app = spawn_app_with(&iap_settings, policies, Notifiers::none()).await;
    let incident = open_incident(&app).await;
    let links = links(&app, &incident);
    assert_eq!(links.len(), 2, "one link per listed approver");
    let (alice_link, bob_link) = (&links[0], &links[1]);
    let origin = app.url.as_str();
    let alice = iap.assertion("alice@example.com", IAP_AUDIENCE, "iap-1");
    let bob = iap.assertion("Bob@Example.com", IAP_AUDIENCE, "iap-1");

    assert_eq!(
        decide_as(alice_link, origin, "approve", None, None).await.0,
        StatusCode::UNAUTHORIZED,
        "IAP identity required"
    );
    // The plain email header is what anyone reaching the service directly could set: ignored.
    assert_eq!(
        decide_as(alice_link, origin, "approve", None, Some("alice@example.com")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let wrong_aud = iap.assertion("alice@example.com", "/projects/1/global/backendServices/other", "iap-1");
    assert_eq!(decide_as(alice_link, origin, "approve", Some(&wrong_aud), None).await.0, StatusCode::UNAUTHORIZED);
    let unknown_key = iap.assertion("alice@example.com", IAP_AUDIENCE, "not-google");
    assert_eq!(decide_as(alice_link, origin, "approve", Some(&unknown_key), None).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = decide_as(alice_link, origin, "approve", Some(&bob), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("this link is for alice@example.com"));
    assert_eq!(state(&app, &incident.id).await.approval, incident.approval, "refusals change nothing");

    assert_eq!(decide_as(alice_link, origin, "approve", Some(&alice), None).await.0, StatusCode::SEE_OTHER);
    assert_eq!(state(&app, &incident.id).await.approval.expect("a").state, ApprovalState::Pending, "one of two");
    let (status, body) = decide_as(alice_link, origin, "approve", Some(&alice), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("another approver is needed"));
    // A link decides once: alice cannot turn her approval into a rejection of the whole request.
    let (status, body) = decide_as(alice_link, origin, "reject", Some(&alice), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("already used"), "{body}");
    assert_eq!(decide_as(bob_link, origin, "approve", Some(&bob), None).await.0, StatusCode::SEE_OTHER);
    let approval = state(&app, &incident.id).await.approval.expect("approval");
    assert_eq!(approval.state, ApprovalState::Approved);
    let by: Vec<&str> = approval.decisions.iter().map(|d| d.by.as_str()).collect();
    assert_eq!(by, ["alice@example.com", "bob@example.com"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_escapes_alert_text_and_cannot_be_framed() {
    let app = spawn_app(&[]).await;
    let mut body: Value = serde_json::from_slice(&fixture("falco/drop-exec-sidekick-customfields.json")).expect("json");
    body["output"] = Value::String("<script>alert(1)</script><img src=x onerror=alert(2)>".into());
    let r = client().post(format!("{}/v1/falco", app.url)).body(body.to_string()).send().await.expect("post");
    let id = r.json::<Value>().await.expect("json")["incident_id"].as_str().expect("id").to_string();
    let incident = state(&app, &id).await;
    let link = links(&app, &incident).remove(0);
    let r = client().get(&link).send().await.expect("get");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.headers()["content-security-policy"].to_str().expect("csp").contains("frame-ancestors 'none'"));
    let html = r.text().await.expect("html");
    assert!(!html.contains("<script>") && !html.contains("<img"), "raw markup from the alert reached the page");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let refused = client().get(format!("{}/approvals/garbage", app.url)).send().await.expect("get");
    assert_eq!(refused.headers()["x-frame-options"], "DENY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_for_one_incident_cannot_act_on_another() {
    let app = spawn_app(&[]).await;
    let first = open_incident(&app).await;
    let mut other: Value =
        serde_json::from_slice(&fixture("falco/drop-exec-sidekick-customfields.json")).expect("json");
    other["output_fields"]["k8s.pod.name"] = Value::String("web-5c6d7e8f9-abcde".into());
    let r = client().post(format!("{}/v1/falco", app.url)).body(other.to_string()).send().await.expect("post");
    let second_id = r.json::<Value>().await.expect("json")["incident_id"].as_str().expect("id").to_string();
    assert_ne!(second_id, first.id);
    let approval = first.approval.clone().expect("approval");
    // The first incident's plan hash, relabelled for the second incident.
    let forged = ApprovalClaims {
        iss: ISSUER.into(),
        aud: app.url.clone(),
        sub: "approver-1".into(),
        inc: second_id.clone(),
        plan: approval.plan_hash.clone(),
        iat: Timestamp::now().as_second(),
        exp: approval.expires_at.as_second(),
        jti: "x".into(),
    };
    let link = format!("{}/approvals/{}", app.url, app.keys.mint(&forged).expect("mint"));
    let (status, body) = decide(&link, Some(&app.url), "approve").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("plan changed"));
    let second = state(&app, &second_id).await;
    assert!(second.steps.iter().filter(|s| s.gated).all(|s| s.status == StepStatus::AwaitingApproval));
}

/// Records every notification it is sent.
#[derive(Default)]
struct RecordingNotifier(std::sync::Mutex<Vec<(riposte_core::notify::Event, Option<ApprovalState>)>>);

#[async_trait::async_trait]
impl riposte_core::notify::Notifier for RecordingNotifier {
    async fn notify(
        &self,
        event: riposte_core::notify::Event,
        incident: &Incident,
        _links: &riposte_core::notify::Links,
    ) -> Result<(), riposte_core::notify::NotifyError> {
        self.0.lock().expect("lock").push((event, incident.approval.as_ref().map(|a| a.state)));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejection_skips_every_destructive_step_and_is_announced() {
    let recorder = std::sync::Arc::new(RecordingNotifier::default());
    let notifiers = Notifiers::new(std::collections::BTreeMap::from([(
        "console".to_string(),
        recorder.clone() as std::sync::Arc<dyn riposte_core::notify::Notifier>,
    )]));
    let app = spawn_app_with(&[], crate::helpers::example_policies(), notifiers).await;
    let incident = open_incident(&app).await;
    let link = links(&app, &incident).remove(0);
    assert_eq!(decide(&link, Some(&app.url), "reject").await.0, StatusCode::SEE_OTHER);
    let after = state(&app, &incident.id).await;
    assert!(
        after
            .steps
            .iter()
            .filter(|s| s.gated)
            .all(|s| matches!(&s.status, StepStatus::Skipped { reason } if reason.contains("rejected")))
    );
    let (status, _) = decide(&link, Some(&app.url), "approve").await;
    assert_eq!(status, StatusCode::CONFLICT, "a rejected request cannot be approved afterwards");
    eventually(|| {
        let recorder = recorder.clone();
        async move {
            let seen = recorder.0.lock().expect("lock").clone();
            seen.contains(&(riposte_core::notify::Event::Decided, Some(ApprovalState::Rejected))).then_some(())
        }
    })
    .await;
}

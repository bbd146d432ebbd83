//! Approval links end to end over HTTP: a GET never changes anything, the decision is a
//! same-origin POST, the first decision wins, refused links change nothing, the two-person rule.

use jiff::Timestamp;
use reqwest::StatusCode;
use riposte_core::approval::{ApprovalClaims, ISSUER, Keys};
use riposte_core::incident::{ApprovalState, Incident, StepStatus};
use riposte_core::notify::Notifiers;
use riposte_core::policy::PolicySet;
use riposte_ingest::{AdminAccess, BodyLimits, Credentials};
use serde_json::Value;

use crate::helpers::{TestApp, eventually, fixture, spawn_app, spawn_app_with};

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// Posts the crypto-mining fixture and waits until its automatic steps are done.
async fn open_incident(app: &TestApp) -> Incident {
    let r = client()
        .post(format!("{}/v1/falco", app.url))
        .body(fixture("falco/drop-exec-sidekick-customfields.json"))
        .send()
        .await
        .expect("post");
    let id = r.json::<Value>().await.expect("json")["incident_id"].as_str().expect("id").to_string();
    eventually(|| {
        let (store, id) = (app.store.clone(), id.clone());
        async move {
            let i = store.get(&id).await.ok()??;
            i.steps.iter().filter(|s| !s.gated).all(|s| s.status == StepStatus::Done).then_some(i)
        }
    })
    .await
}

async fn decide(link: &str, origin: Option<&str>, decision: &str, iap: Option<&str>) -> (StatusCode, String) {
    let mut r = client()
        .post(link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("decision={decision}"));
    if let Some(o) = origin {
        r = r.header("origin", o);
    }
    if let Some(email) = iap {
        r = r.header("x-goog-authenticated-user-email", format!("accounts.google.com:{email}"));
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
    let app = spawn_app(Credentials::default(), BodyLimits::default(), AdminAccess::Loopback).await;
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
    assert_eq!(decide(link, None, "approve", None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(decide(link, Some("https://evil.example.com"), "approve", None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(decide(link, Some(&app.url), "maybe", None).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(state(&app, &incident.id).await.approval, incident.approval, "refusals change nothing");

    // A double click, eight times over, at once: one decision, one execution.
    let mut clicks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (link, origin) = (link.clone(), app.url.clone());
        clicks.spawn(async move { decide(&link, Some(&origin), "approve", None).await });
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
    let app = spawn_app(Credentials::default(), BodyLimits::default(), AdminAccess::Loopback).await;
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
        let (post_status, _) = decide(&link, Some(&app.url), "approve", None).await;
        assert_eq!(post_status, status, "POST {text}");
    }
    assert_eq!(state(&app, &incident.id).await.approval, incident.approval, "nothing changed");

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
                    )
                    .expect("target");
                }
                true
            }),
        )
        .await
        .expect("update");
    let (status, body) = decide(&good, Some(&app.url), "approve", None).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_person_rule_behind_iap() {
    let policies = PolicySet::from_yaml(&riposte::EXAMPLE_POLICY.replace(
        "    approval:\n      expires_in: 30m\n      required: 1\n",
        "    approval:\n      expires_in: 30m\n      approvers: [alice@example.com, bob@example.com]\n      required: 2\n",
    ))
    .expect("policy");
    assert_eq!(policies.policies[0].approval.required, 2, "the example policy was edited as intended");
    let app = spawn_app_with(
        Credentials::default(),
        BodyLimits::default(),
        AdminAccess::Loopback,
        policies,
        true,
        Notifiers::none(),
    )
    .await;
    let incident = open_incident(&app).await;
    let links = links(&app, &incident);
    assert_eq!(links.len(), 2, "one link per listed approver");
    let (alice, bob) = (&links[0], &links[1]);
    let origin = Some(app.url.as_str());

    assert_eq!(decide(alice, origin, "approve", None).await.0, StatusCode::UNAUTHORIZED, "IAP identity required");
    let (status, body) = decide(alice, origin, "approve", Some("bob@example.com")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("this link is for alice@example.com"));
    assert_eq!(decide(alice, origin, "approve", Some("Alice@Example.com")).await.0, StatusCode::SEE_OTHER);
    assert_eq!(state(&app, &incident.id).await.approval.expect("a").state, ApprovalState::Pending, "one of two");
    let (status, body) = decide(alice, origin, "approve", Some("alice@example.com")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("another approver is needed"));
    assert_eq!(decide(bob, origin, "approve", Some("bob@example.com")).await.0, StatusCode::SEE_OTHER);
    let approved = state(&app, &incident.id).await;
    let approval = approved.approval.expect("approval");
    assert_eq!(approval.state, ApprovalState::Approved);
    let by: Vec<&str> = approval.decisions.iter().map(|d| d.by.as_str()).collect();
    assert_eq!(by, ["alice@example.com", "bob@example.com"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejection_skips_every_destructive_step() {
    let app = spawn_app(Credentials::default(), BodyLimits::default(), AdminAccess::Loopback).await;
    let incident = open_incident(&app).await;
    let link = links(&app, &incident).remove(0);
    assert_eq!(decide(&link, Some(&app.url), "reject", None).await.0, StatusCode::SEE_OTHER);
    let after = state(&app, &incident.id).await;
    assert!(
        after
            .steps
            .iter()
            .filter(|s| s.gated)
            .all(|s| matches!(&s.status, StepStatus::Skipped { reason } if reason.contains("rejected")))
    );
    let (status, _) = decide(&link, Some(&app.url), "approve", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "a rejected request cannot be approved afterwards");
}

//! The fake's own semantics, through real HTTPS clients: the Container API, tokens, patches and
//! their preconditions, selectors, network policies, evictions, deletions with garbage
//! collection, injected failures, and HTTP/2.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Value, json};

use super::{DeletionCause, FakeGke, NodeSpec, PodSpec, UNREACHABLE_ENDPOINT, WorkloadSpec};

const MERGE: &str = "application/merge-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const JSON: &str = "application/json";

/// A client of the fake's two servers.
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn send(&self, method: &str, path: &str, content_type: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let (status, _, body) = self.send_full(method, path, content_type, body).await;
        (status, body)
    }

    async fn send_full(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await.expect("the fake answers");
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, headers, response.json().await.expect("a JSON body"))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None, None).await
    }
}

/// A client of the apiserver trusting only the fake's certificate.
fn kube(fake: &FakeGke, token: &str) -> Client {
    let ca = reqwest::Certificate::from_pem(fake.ca_pem().as_bytes()).expect("a PEM certificate");
    let http = reqwest::Client::builder().tls_certs_only([ca]).build().expect("a client");
    Client { http, base: format!("https://{}", fake.apiserver_endpoint()), token: token.to_owned() }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn pod(namespace: &str, name: &str, node: &str) -> PodSpec {
    PodSpec {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        node: node.to_owned(),
        labels: labels(&[("app", "web")]),
        ..PodSpec::default()
    }
}

async fn started() -> (FakeGke, Client) {
    let fake = FakeGke::start("p", "us-central1", "prod").await;
    fake.add_node(NodeSpec {
        name: "n1".to_owned(),
        provider_id: "gce://p/us-central1-a/n1".to_owned(),
        ..NodeSpec::default()
    });
    let client = kube(&fake, "test-token");
    (fake, client)
}

#[tokio::test]
async fn clusters_get_reports_endpoint_ca_and_private_mode() {
    let fake = FakeGke::start("p", "us-central1", "prod").await;
    let client = Client { http: reqwest::Client::new(), base: fake.container_endpoint(), token: "t".to_owned() };
    let path = "/v1/projects/p/locations/us-central1/clusters/prod?%24alt=json%3Benum-encoding%3Dint";

    let (status, cluster) = client.get(path).await;
    assert_eq!(status, 200);
    assert_eq!((cluster["name"].as_str(), cluster["status"].as_str()), (Some("prod"), Some("RUNNING")));
    assert_eq!(cluster["endpoint"], json!(fake.apiserver_endpoint()));
    assert_eq!(cluster["privateClusterConfig"]["enablePrivateEndpoint"], json!(false));
    let ca = cluster["masterAuth"]["clusterCaCertificate"].as_str().expect("a CA");
    let ca = base64::engine::general_purpose::STANDARD.decode(ca).expect("base64");
    assert_eq!(String::from_utf8(ca).expect("PEM"), fake.ca_pem());

    fake.set_private_only(true);
    let (_, cluster) = client.get(path).await;
    assert_eq!(cluster["endpoint"], json!(UNREACHABLE_ENDPOINT));
    assert_eq!(cluster["privateClusterConfig"]["enablePrivateEndpoint"], json!(true));
    assert_eq!(cluster["privateClusterConfig"]["privateEndpoint"], json!(fake.apiserver_endpoint()));

    let (status, error) = client.get("/v1/projects/p/locations/us-central1/clusters/other").await;
    assert_eq!(status, 404);
    assert_eq!(error["error"]["status"], "NOT_FOUND");
    assert_eq!(error["error"]["message"], "Not found: projects/p/locations/us-central1/clusters/other.");

    fake.fail_next("GET", "/v1/", 503, 1);
    let (status, error) = client.get(path).await;
    assert_eq!((status, error["error"]["status"].as_str()), (503, Some("UNAVAILABLE")));
    assert_eq!(client.get(path).await.0, 200);
    let statuses: Vec<u16> = fake.container_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 404, 503, 200]);
}

#[tokio::test]
async fn the_apiserver_serves_https_to_accepted_tokens_only() {
    let (fake, client) = started().await;
    let (status, node) = client.get("/api/v1/nodes/n1").await;
    assert_eq!(status, 200);
    assert_eq!(node["spec"]["providerID"], "gce://p/us-central1-a/n1");
    assert_eq!(Some(node), fake.node("n1"));

    let (status, error) = kube(&fake, "stolen").get("/api/v1/nodes/n1").await;
    assert_eq!(status, 401);
    assert_eq!((error["kind"].as_str(), error["reason"].as_str()), (Some("Status"), Some("Unauthorized")));
    fake.set_tokens(&["stolen"]);
    assert_eq!(kube(&fake, "stolen").get("/api/v1/nodes/n1").await.0, 200);
    assert_eq!(fake.tokens_seen(), ["test-token", "stolen"]);

    let (status, error) = kube(&fake, "stolen").get("/api/v1/nodes/n2").await;
    assert_eq!((status, error["message"].as_str()), (404, Some("nodes \"n2\" not found")));
    assert_eq!(error["details"], json!({"name": "n2", "kind": "nodes"}));
    assert_eq!(kube(&fake, "stolen").get("/api/v1/nodez").await.0, 404);
    assert_eq!(kube(&fake, "stolen").send("PUT", "/api/v1/nodes/n1", Some(JSON), Some(json!({}))).await.0, 405);
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 401, 200, 404, 404, 405]);
    assert!(fake.mutations().is_empty());
}

#[tokio::test]
async fn http2_is_negotiated_by_alpn() {
    use http_body_util::{BodyExt, Empty};
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let (fake, _) = started().await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(fake.ca_pem().as_bytes()).expect("a PEM certificate")).expect("a root");
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(fake.apiserver_endpoint()).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("an IP name");
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.expect("TLS");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let io = hyper_util::rt::TokioIo::new(tls);
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await.expect("h2");
    tokio::spawn(connection);
    let request = http::Request::get(format!("https://{}/api/v1/nodes/n1", fake.apiserver_endpoint()))
        .header("authorization", "Bearer test-token")
        .body(Empty::<axum::body::Bytes>::new())
        .expect("a request");
    let response = sender.send_request(request).await.expect("a response");
    assert_eq!((response.status().as_u16(), response.version()), (200, http::Version::HTTP_2));
    let body = response.into_body().collect().await.expect("the body").to_bytes();
    let node: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(node["metadata"]["name"], "n1");
}

#[tokio::test]
async fn merge_patches_validate_and_honour_uid_and_resource_version() {
    let (fake, client) = started().await;
    let uid = fake.add_pod(pod("default", "web-1", "n1"));
    let path = "/api/v1/namespaces/default/pods/web-1";
    let rv = |p: &Value| p["metadata"]["resourceVersion"].as_str().expect("a resourceVersion").to_owned();
    let before = rv(&fake.pod("default", "web-1").expect("the pod"));

    let patch = json!({"metadata": {"uid": uid, "labels": {"riposte.io/quarantine": "inc-1"}}});
    let (status, patched) = client.send("PATCH", path, Some(MERGE), Some(patch)).await;
    assert_eq!(status, 200);
    assert_eq!(patched["metadata"]["labels"], json!({"app": "web", "riposte.io/quarantine": "inc-1"}));
    assert!(rv(&patched).parse::<u64>().expect("a number") > before.parse().expect("a number"));
    assert_eq!(Some(patched.clone()), fake.pod("default", "web-1"));

    // The same patch again changes nothing and keeps the resourceVersion.
    let same = json!({"metadata": {"labels": {"riposte.io/quarantine": "inc-1"}}});
    assert_eq!(client.send("PATCH", path, Some(STRATEGIC), Some(same)).await.1, patched);

    let (status, error) = client
        .send("PATCH", path, Some(MERGE), Some(json!({"metadata": {"uid": "other-uid", "labels": {"a": "b"}}})))
        .await;
    assert_eq!((status, error["reason"].as_str()), (409, Some("Conflict")));
    let expected = format!("Precondition failed: UID in precondition: other-uid, UID in object meta: {uid}");
    assert!(error["message"].as_str().expect("a message").ends_with(&expected), "{error}");

    let stale = json!({"metadata": {"resourceVersion": before, "labels": {"a": "b"}}});
    let (status, error) = client.send("PATCH", path, Some(MERGE), Some(stale)).await;
    assert_eq!(status, 409);
    assert!(error["message"].as_str().expect("a message").contains("the object has been modified"));

    let invalid = json!({"metadata": {"labels": {"riposte.io/quarantine": "not valid!"}}});
    let (status, error) = client.send("PATCH", path, Some(MERGE), Some(invalid)).await;
    assert_eq!((status, error["reason"].as_str()), (422, Some("Invalid")));
    assert_eq!(error["details"]["causes"][0]["field"], "metadata.labels");

    let unlabel = json!({"metadata": {"labels": {"riposte.io/quarantine": null}}});
    assert_eq!(client.send("PATCH", path, Some(JSON), Some(unlabel.clone())).await.0, 415);
    let (status, dry) = client.send("PATCH", &format!("{path}?dryRun=All"), Some(MERGE), Some(unlabel.clone())).await;
    assert_eq!((status, &dry["metadata"]["labels"]), (200, &json!({"app": "web"})));
    assert_eq!(fake.pod("default", "web-1").expect("the pod")["metadata"]["labels"]["riposte.io/quarantine"], "inc-1");
    assert_eq!(client.send("PATCH", &format!("{path}?dryRun=Yes"), Some(MERGE), Some(unlabel.clone())).await.0, 400);
    assert_eq!(client.send("PATCH", path, Some(MERGE), Some(unlabel)).await.0, 200);
    assert_eq!(fake.pod("default", "web-1").expect("the pod")["metadata"]["labels"], json!({"app": "web"}));

    let ops = json!([{"op": "add", "path": "/metadata/annotations", "value": {"riposte.io/incident": "inc-1"}}]);
    let (status, patched) = client.send("PATCH", path, Some("application/json-patch+json"), Some(ops)).await;
    assert_eq!((status, &patched["metadata"]["annotations"]["riposte.io/incident"]), (200, &json!("inc-1")));
    let spec_change = json!({"spec": {"nodeName": "n2"}});
    assert_eq!(client.send("PATCH", path, Some(MERGE), Some(spec_change)).await.0, 422);
    let missing = "/api/v1/namespaces/default/pods/nope";
    assert_eq!(client.send("PATCH", missing, Some(MERGE), Some(json!({}))).await.0, 404);

    let mutations: Vec<(String, u16)> = fake.mutations().iter().map(|m| (m.method.clone(), m.status)).collect();
    assert_eq!(mutations.len(), 4, "{mutations:?}");
    assert!(fake.requests().iter().any(|r| r.dry_run && r.status == 200));
}

#[tokio::test]
async fn cordoning_a_node_with_a_strategic_patch() {
    let (fake, client) = started().await;
    let cordon = json!({"spec": {"unschedulable": true}});
    let (status, node) = client.send("PATCH", "/api/v1/nodes/n1", Some(STRATEGIC), Some(cordon)).await;
    assert_eq!((status, &node["spec"]["unschedulable"]), (200, &json!(true)));
    let uncordon = json!({"spec": {"unschedulable": false}});
    let (_, node) = client.send("PATCH", "/api/v1/nodes/n1", Some(STRATEGIC), Some(uncordon)).await;
    assert_eq!(node["spec"].get("unschedulable"), None);
    let provider = json!({"spec": {"providerID": "gce://p/z/other"}});
    assert_eq!(client.send("PATCH", "/api/v1/nodes/n1", Some(MERGE), Some(provider)).await.0, 422);
    assert_eq!(fake.mutations().len(), 2);
}

#[tokio::test]
async fn pods_are_listed_by_node() {
    let (fake, client) = started().await;
    fake.add_pod(pod("default", "web-1", "n1"));
    fake.add_pod(pod("kube-system", "agent", "n1"));
    fake.add_pod(pod("default", "web-2", "n2"));
    assert_eq!(
        fake.pods_on("n1"),
        [("default".to_owned(), "web-1".to_owned()), ("kube-system".to_owned(), "agent".to_owned())]
    );

    let (status, list) = client.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1").await;
    assert_eq!((status, list["kind"].as_str()), (200, Some("PodList")));
    let names: Vec<&str> =
        list["items"].as_array().expect("items").iter().filter_map(|p| p["metadata"]["name"].as_str()).collect();
    assert_eq!(names, ["web-1", "agent"]);
    assert!(list["metadata"]["resourceVersion"].is_string());
    let (_, list) = client.get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(client.get("/api/v1/pods?fieldSelector=spec.host%3Dn1").await.0, 400);
}

#[tokio::test]
async fn network_policies_are_created_once_and_deleted() {
    let (fake, client) = started().await;
    let collection = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies";
    let policy = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "riposte-isolate-inc-1", "namespace": "default"},
        "spec": {"podSelector": {"matchLabels": {"riposte.io/isolate": "inc-1"}}, "policyTypes": ["Ingress", "Egress"]},
    });
    let (status, _) = client.send("POST", &format!("{collection}?dryRun=All"), Some(JSON), Some(policy.clone())).await;
    assert_eq!(status, 201);
    assert_eq!(fake.network_policy("default", "riposte-isolate-inc-1"), None);

    let (status, created) = client.send("POST", collection, Some(JSON), Some(policy.clone())).await;
    assert_eq!(status, 201);
    assert_eq!(Some(created.clone()), fake.network_policy("default", "riposte-isolate-inc-1"));
    assert_eq!(created["spec"]["policyTypes"], json!(["Ingress", "Egress"]));

    let (status, error) = client.send("POST", collection, Some(JSON), Some(policy.clone())).await;
    assert_eq!((status, error["reason"].as_str()), (409, Some("AlreadyExists")));
    assert_eq!(error["message"], "networkpolicies.networking.k8s.io \"riposte-isolate-inc-1\" already exists");

    let mut elsewhere = policy.clone();
    elsewhere["metadata"]["namespace"] = json!("other");
    assert_eq!(client.send("POST", collection, Some(JSON), Some(elsewhere)).await.0, 400);
    let unnamed = json!({"metadata": {}, "spec": {}});
    assert_eq!(client.send("POST", collection, Some(JSON), Some(unnamed)).await.0, 422);
    assert_eq!(client.send("POST", collection, Some("application/yaml"), Some(policy)).await.0, 415);

    let object = format!("{collection}/riposte-isolate-inc-1");
    assert_eq!(client.get(&object).await.0, 200);
    let (status, deleted) = client.send("DELETE", &object, None, None).await;
    assert_eq!((status, deleted["status"].as_str()), (200, Some("Success")));
    assert_eq!(client.get(&object).await.0, 404);
    assert_eq!(client.send("DELETE", &object, None, None).await.0, 404);
}

#[tokio::test]
async fn evictions_respect_budgets_and_uid_preconditions() {
    let (fake, client) = started().await;
    let uid = fake.add_pod(pod("default", "web-1", "n1"));
    let path = "/api/v1/namespaces/default/pods/web-1/eviction";
    let eviction = |name: &str, uid: &str| {
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "default"},
               "deleteOptions": {"gracePeriodSeconds": 10, "preconditions": {"uid": uid}}})
    };
    fake.block_eviction("default", "web-1", Some(1));
    let (status, error) = client.send("POST", path, Some(JSON), Some(eviction("web-1", &uid))).await;
    assert_eq!((status, error["reason"].as_str()), (429, Some("TooManyRequests")));
    assert_eq!(error["message"], "Cannot evict pod as it would violate the pod's disruption budget.");
    assert_eq!(error["details"]["causes"][0]["reason"], "DisruptionBudget");

    assert_eq!(client.send("POST", path, Some(JSON), Some(eviction("web-2", &uid))).await.0, 400);
    let (status, error) = client.send("POST", path, Some(JSON), Some(eviction("web-1", "old-uid"))).await;
    assert_eq!(status, 409);
    assert!(error["message"].as_str().expect("a message").contains("UID in precondition: old-uid"));
    assert!(fake.pod("default", "web-1").is_some());

    let (status, done) = client.send("POST", path, Some(JSON), Some(eviction("web-1", &uid))).await;
    assert_eq!((status, done["status"].as_str()), (201, Some("Success")));
    assert_eq!(fake.pod("default", "web-1"), None);
    let deletions = fake.deletions();
    assert_eq!(deletions.len(), 1);
    assert_eq!((deletions[0].cause, deletions[0].grace_period_seconds), (DeletionCause::Eviction, Some(10)));
    assert_eq!(deletions[0].uid, uid);
    assert_eq!(client.send("POST", path, Some(JSON), Some(eviction("web-1", &uid))).await.0, 404);
}

#[tokio::test]
async fn deleting_pods_checks_the_uid_and_recreated_pods_get_a_new_one() {
    let (fake, client) = started().await;
    let old = fake.add_pod(pod("default", "db-0", "n1"));
    let new = fake.recreate_pod("default", "db-0");
    assert_ne!(old, new);
    let path = "/api/v1/namespaces/default/pods/db-0";
    let options = |uid: &str| {
        json!({
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": uid},
        })
    };
    assert_eq!(client.send("DELETE", path, Some(JSON), Some(options(&old))).await.0, 409);
    let (status, deleted) = client.send("DELETE", path, Some(JSON), Some(options(&new))).await;
    assert_eq!((status, deleted["metadata"]["uid"].as_str()), (200, Some(new.as_str())));
    assert_eq!(fake.pod("default", "db-0"), None);
    assert_eq!(fake.deletions()[0].grace_period_seconds, Some(0));

    fake.recreate_pod("default", "db-0");
    let (status, deleted) = client.send("DELETE", &format!("{path}?gracePeriodSeconds=5"), None, None).await;
    assert_eq!((status, &deleted["metadata"]["deletionGracePeriodSeconds"]), (200, &json!(5)));
}

#[tokio::test]
async fn deleting_workloads_collects_or_orphans_dependents() {
    let (fake, client) = started().await;
    let workload = |kind: &str, name: &str, owner: Option<(&str, &str)>| WorkloadSpec {
        kind: kind.to_owned(),
        namespace: "default".to_owned(),
        name: name.to_owned(),
        owner: owner.map(|(k, n)| (k.to_owned(), n.to_owned())),
    };
    let deployment = fake.add_workload(workload("Deployment", "web", None));
    let replica_set = fake.add_workload(workload("ReplicaSet", "web-7d4b9c", Some(("Deployment", "web"))));
    let mut web = pod("default", "web-7d4b9c-abcde", "n1");
    web.owner = Some(("ReplicaSet".to_owned(), "web-7d4b9c".to_owned()));
    fake.add_pod(web);
    let owner = &fake.pod("default", "web-7d4b9c-abcde").expect("the pod")["metadata"]["ownerReferences"][0];
    assert_eq!((owner["uid"].as_str(), owner["controller"].as_bool()), (Some(replica_set.as_str()), Some(true)));

    let path = "/apis/apps/v1/namespaces/default/deployments/web";
    let options = |policy: &str, uid: &str| json!({"propagationPolicy": policy, "preconditions": {"uid": uid}});
    assert_eq!(client.send("DELETE", path, Some(JSON), Some(options("Sideways", &deployment))).await.0, 400);
    assert_eq!(client.send("DELETE", path, Some(JSON), Some(options("Foreground", "old"))).await.0, 409);
    let mut dry = options("Foreground", &deployment);
    dry["dryRun"] = json!(["All"]);
    assert_eq!(client.send("DELETE", path, Some(JSON), Some(dry)).await.0, 200);
    assert!(fake.workload("Deployment", "default", "web").is_some());
    assert!(fake.mutations().is_empty());

    let (status, deleted) = client.send("DELETE", path, Some(JSON), Some(options("Foreground", &deployment))).await;
    assert_eq!((status, &deleted["metadata"]["finalizers"]), (200, &json!(["foregroundDeletion"])));
    assert!(deleted["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(fake.workload("ReplicaSet", "default", "web-7d4b9c"), None);
    assert_eq!(fake.pod("default", "web-7d4b9c-abcde"), None);
    let causes: Vec<(String, DeletionCause)> = fake.deletions().into_iter().map(|d| (d.kind, d.cause)).collect();
    assert_eq!(
        causes,
        [
            ("Deployment".to_owned(), DeletionCause::Delete),
            ("ReplicaSet".to_owned(), DeletionCause::GarbageCollector),
            ("Pod".to_owned(), DeletionCause::GarbageCollector)
        ]
    );

    // A batch/v1 Job deleted without a policy orphans its pods, as the real server does.
    fake.add_workload(workload("Job", "backup", None));
    let mut job_pod = pod("default", "backup-xyz", "n1");
    job_pod.owner = Some(("Job".to_owned(), "backup".to_owned()));
    fake.add_pod(job_pod);
    let (status, deleted) = client.send("DELETE", "/apis/batch/v1/namespaces/default/jobs/backup", None, None).await;
    assert_eq!((status, &deleted["metadata"]["finalizers"]), (200, &json!(["orphan"])));
    let orphan = fake.pod("default", "backup-xyz").expect("the orphaned pod");
    assert_eq!(orphan["metadata"].get("ownerReferences"), None);
}

#[tokio::test]
async fn injected_failures_answer_without_effect() {
    let (fake, client) = started().await;
    fake.fail_next("PATCH", "/api/v1/nodes/", 429, 1);
    let cordon = json!({"spec": {"unschedulable": true}});
    let (status, headers, error) =
        client.send_full("PATCH", "/api/v1/nodes/n1", Some(STRATEGIC), Some(cordon.clone())).await;
    assert_eq!((status, error["reason"].as_str()), (429, Some("TooManyRequests")));
    assert_eq!(headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    assert_eq!(fake.node("n1").expect("the node")["spec"].get("unschedulable"), None);
    fake.fail_next("PATCH", "/api/v1/nodes/", 500, 1);
    assert_eq!(client.send("PATCH", "/api/v1/nodes/n1", Some(STRATEGIC), Some(cordon.clone())).await.0, 500);
    assert_eq!(client.send("PATCH", "/api/v1/nodes/n1", Some(STRATEGIC), Some(cordon)).await.0, 200);
    assert_eq!(fake.mutations().len(), 1);
}

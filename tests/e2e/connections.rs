//! The real binary's connections against clients that misbehave, over raw TCP: half-sent headers
//! and bodies, idle keep-alive, half-closed clients, ambiguous framing, more intake than the
//! instance buffers, more connections than it serves. Each was found open on the release binary
//! by a hostile-input run; short limits are configured so the tests take seconds.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::{TestBinary, fixture, spawn_binary};

/// A server with 1 s header and body timeouts and `extra` settings.
fn server(dir: &std::path::Path, extra: &[(&str, &str)]) -> TestBinary {
    let mut env = vec![("RIPOSTE_HEADER_TIMEOUT", "1s"), ("RIPOSTE_BODY_TIMEOUT", "1s")];
    env.extend_from_slice(extra);
    spawn_binary(dir, &env)
}

async fn connect(server: &TestBinary) -> TcpStream {
    TcpStream::connect(server.url.trim_start_matches("http://")).await.expect("connect")
}

/// Reads until the server closes the connection (or 10 s pass: then the test fails).
async fn read_to_close(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the server kept the connection open; it sent: {}", String::from_utf8_lossy(&received));
    (String::from_utf8_lossy(&received).into_owned(), started.elapsed())
}

/// The status code and JSON body of the one response in `raw`.
fn parse_response(raw: &str) -> (u16, Value) {
    let status = raw.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{raw:?}"));
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn falco_request(body: &[u8], extra_headers: &str) -> Vec<u8> {
    let mut request = format!(
        "POST /v1/falco HTTP/1.1\r\nHost: riposte\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra_headers}\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_header_is_closed_within_the_header_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path(), &[]);
    let mut stream = connect(&server).await;
    stream.write_all(b"POST /v1/falco HTTP/1.1\r\nHost: riposte\r\nContent-Le").await.expect("write");
    let (_, took) = read_to_close(&mut stream).await;
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_completes_is_answered_408_within_the_body_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path(), &[]);
    let mut stream = connect(&server).await;
    let request =
        b"POST /v1/falco HTTP/1.1\r\nHost: riposte\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{";
    stream.write_all(request).await.expect("write");
    let (raw, took) = read_to_close(&mut stream).await;
    let (status, body) = parse_response(&raw);
    assert_eq!(status, 408, "{raw}");
    assert_eq!(body["error"], "request_timeout", "{raw}");
    assert_eq!(body["message"], "the request body did not arrive within 1 s", "{raw}");
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path(), &[]);
    let mut stream = connect(&server).await;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: riposte\r\n\r\n").await.expect("write");
    let (raw, took) = read_to_close(&mut stream).await;
    assert!(raw.starts_with("HTTP/1.1 200 "), "{raw}");
    assert!(took < Duration::from_secs(5), "an idle connection was kept {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_half_closes_after_its_request_gets_the_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path(), &[]);
    let mut stream = connect(&server).await;
    let body = fixture("falco/drop-exec-sidekick-customfields.json");
    stream.write_all(&falco_request(&body, "")).await.expect("write");
    // Done sending: some clients (and `curl -T` style tools) shut down their side and wait.
    stream.shutdown().await.expect("shutdown");
    let (raw, _) = read_to_close(&mut stream).await;
    let (status, answer) = parse_response(&raw);
    assert_eq!(status, 200, "{raw}");
    assert!(answer["incident_id"].is_string(), "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_both_content_length_and_transfer_encoding_smuggles_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path(), &[]);
    let mut stream = connect(&server).await;
    // Read by Content-Length, the body would end after `0\r\n\r\n` plus a second request; read
    // by Transfer-Encoding, that second request follows the first on the connection. A proxy and
    // riposte disagreeing on which is the smuggling attack (RFC 9112 §6.3).
    let smuggled = "GET /v1/incidents HTTP/1.1\r\nHost: riposte\r\n\r\n";
    let falco = String::from_utf8(fixture("falco/drop-exec-sidekick-customfields.json")).expect("utf8");
    let chunked = format!("{:x}\r\n{falco}\r\n0\r\n\r\n{smuggled}", falco.len());
    let request = format!(
        "POST /v1/falco HTTP/1.1\r\nHost: riposte\r\nContent-Type: application/json\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}",
        chunked.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let (raw, _) = read_to_close(&mut stream).await;
    assert_eq!(raw.matches("HTTP/1.1 ").count(), 1, "one answer, then the connection closed: {raw}");
    let (status, answer) = parse_response(&raw);
    assert_eq!(status, 400, "{raw}");
    assert_eq!(answer["error"], "malformed_request", "{raw}");
    assert!(answer["message"].as_str().is_some_and(|m| m.contains("Content-Length together with Transfer-Encoding")));
    assert!(raw.to_ascii_lowercase().contains("connection: close"), "{raw}");
    // Refused before any handler ran: no incident was opened from the chunked Falco event.
    let listed: Value =
        reqwest::get(format!("{}/v1/incidents", server.url)).await.expect("list").json().await.expect("json");
    assert_eq!(listed, serde_json::json!([]), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_hyper_would_refuse_bare_get_the_json_error_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path(), &[]);
    let huge = format!("GET /healthz HTTP/1.1\r\nHost: riposte\r\nx-pad: {}\r\n\r\n", "a".repeat(70_000));
    for (request, status, error, message) in [
        (
            "POST /v1/falco HTTP/1.1\r\nHost: riposte\r\nbad header: 1\r\nContent-Length: 0\r\n\r\n".to_string(),
            400,
            "malformed_request",
            "the request head is malformed: invalid header name",
        ),
        (
            "POST /v1/falco HTTP/1.1\r\nHost: riposte\r\nContent-Length: 12abc\r\n\r\n".to_string(),
            400,
            "malformed_request",
            "Content-Length is not a number",
        ),
        (huge, 431, "head_too_large", "the request head exceeds 64 KiB"),
    ] {
        let mut stream = connect(&server).await;
        stream.write_all(request.as_bytes()).await.expect("write");
        let (raw, _) = read_to_close(&mut stream).await;
        let (got, answer) = parse_response(&raw);
        assert_eq!(
            (got, answer["error"].as_str(), answer["message"].as_str()),
            (status, Some(error), Some(message)),
            "{raw}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_character_in_a_chunk_extension_is_answered_400() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path(), &[]);
    let mut stream = connect(&server).await;
    let falco = String::from_utf8(fixture("falco/drop-exec-sidekick-customfields.json")).expect("utf8");
    let request = format!(
        "POST /v1/falco HTTP/1.1\r\nHost: riposte\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x};ext=\x07\r\n{falco}\r\n0\r\n\r\n",
        falco.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let (raw, _) = read_to_close(&mut stream).await;
    let (status, answer) = parse_response(&raw);
    assert_eq!(status, 400, "{raw}");
    assert_eq!(answer["error"], "body_unreadable", "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_beyond_the_buffer_budget_is_shed_with_503_while_healthz_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A 1 MiB budget, and bodies given 10 s, so that one held request spends it all.
    let server = spawn_binary(dir.path(), &[("RIPOSTE_INTAKE_BUFFER_MIB", "1"), ("RIPOSTE_BODY_TIMEOUT", "10s")]);
    let mut holder = connect(&server).await;
    let announced = b"POST /v1/falco HTTP/1.1\r\nHost: riposte\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n{";
    holder.write_all(announced).await.expect("write");

    let client = reqwest::Client::new();
    let falco = fixture("falco/drop-exec-sidekick-customfields.json");
    // The holder's reservation is made once its header is read: poll until shedding starts.
    let started = Instant::now();
    let shed = loop {
        let r = client.post(format!("{}/v1/falco", server.url)).body(falco.clone()).send().await.expect("post");
        if r.status() == 503 || started.elapsed() > Duration::from_secs(5) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    let answer: Value = shed.json().await.expect("json");
    assert_eq!(answer["error"], "overloaded", "{answer}");
    assert!(answer["message"].as_str().is_some_and(|m| m.contains("1048576 bytes")), "{answer}");
    let health = client.get(format!("{}/healthz", server.url)).send().await.expect("healthz");
    assert_eq!(health.status(), 200, "/healthz takes no budget");

    // The held request ends (its client goes away): the budget is free again.
    drop(holder);
    let taken = crate::helpers::eventually(|| async {
        let r = client.post(format!("{}/v1/falco", server.url)).body(falco.clone()).send().await.ok()?;
        (r.status() == 200).then_some(())
    });
    taken.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_a_connection_waits_until_one_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = spawn_binary(dir.path(), &[("RIPOSTE_MAX_CONNECTIONS", "2"), ("RIPOSTE_HEADER_TIMEOUT", "2s")]);
    // Two connections that send nothing hold both slots until the header timeout closes them.
    let idle = [connect(&server).await, connect(&server).await];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let mut third = connect(&server).await;
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: riposte\r\nConnection: close\r\n\r\n").await.expect("write");
    let (raw, _) = read_to_close(&mut third).await;
    let took = started.elapsed();
    assert!(raw.starts_with("HTTP/1.1 200 "), "{raw}");
    assert!(took > Duration::from_millis(1000), "served at once ({took:?}): the cap did not hold");
    drop(idle);
    drop(server);
}

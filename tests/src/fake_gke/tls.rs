//! HTTPS for the fake apiserver: a self-signed certificate made at start (rcgen on aws-lc-rs),
//! rustls with the aws-lc-rs provider given explicitly (no process-wide default needed), and
//! hyper-util serving the axum router over HTTP/1.1 or HTTP/2 (chosen by ALPN or preface).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The server side of TLS and the certificate clients must trust.
pub(crate) struct Tls {
    /// The certificate, PEM (self-signed: it is its own CA).
    pub ca_pem: String,
    pub acceptor: TlsAcceptor,
}

/// A fresh self-signed certificate for `127.0.0.1` (IP SAN) and `localhost` (DNS SAN), and a
/// TLS 1.3 acceptor offering `h2` and `http/1.1`.
pub(crate) fn self_signed() -> Tls {
    let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(names).expect("generate the fake apiserver's certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .expect("rustls accepts the generated certificate and key");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Tls { ca_pem: cert.pem(), acceptor: TlsAcceptor::from(Arc::new(config)) }
}

/// Accepts TLS connections on `listener` and serves `router` on each, forever (until the
/// runtime stops). Failed handshakes and broken connections only end their own connection.
pub(crate) async fn serve(listener: TcpListener, acceptor: TlsAcceptor, router: Router) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors or similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else { return };
            let builder = auto::Builder::new(TokioExecutor::new());
            // A client hanging up mid-request is no concern of the fake's.
            let _ = builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(router)).await;
        });
    }
}

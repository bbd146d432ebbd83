//! Resource paths, full links, fingerprints and timestamps, formatted as real Compute does.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// What real Compute puts in front of every resource path in links, whatever host was called.
pub(crate) const API: &str = "https://www.googleapis.com/compute/v1";

/// The fake project number used in `created-by` metadata.
pub(crate) const PROJECT_NUMBER: u64 = 123_456_789;

/// `projects/P/zones/Z/COLLECTION/NAME`.
pub(crate) fn zonal(project: &str, zone: &str, collection: &str, name: &str) -> String {
    format!("projects/{project}/zones/{zone}/{collection}/{name}")
}

/// `projects/P/global/COLLECTION/NAME`.
pub(crate) fn global(project: &str, collection: &str, name: &str) -> String {
    format!("projects/{project}/global/{collection}/{name}")
}

/// The full link of a resource path.
pub(crate) fn link(path: &str) -> String {
    format!("{API}/{path}")
}

/// The full link of a zone.
pub(crate) fn zone_link(project: &str, zone: &str) -> String {
    link(&format!("projects/{project}/zones/{zone}"))
}

/// A reference to a network (name, relative path or link) as a full link, as Compute stores it.
pub(crate) fn network_link(project: &str, network: &str) -> String {
    if network.starts_with("https://") {
        network.to_owned()
    } else if network.starts_with("projects/") {
        link(network)
    } else if network.starts_with("global/") {
        link(&format!("projects/{project}/{network}"))
    } else {
        link(&global(project, "networks", network))
    }
}

/// `us-central1` for `us-central1-a`.
pub(crate) fn region_of(zone: &str) -> &str {
    zone.rsplit_once('-').map_or(zone, |(region, _)| region)
}

/// The multi-region a snapshot is stored in by default, from the disk's zone.
pub(crate) fn default_storage_location(zone: &str) -> String {
    match zone.split('-').next().unwrap_or(zone) {
        "us" | "northamerica" | "southamerica" => "us".to_owned(),
        "europe" => "eu".to_owned(),
        "asia" | "australia" => "asia".to_owned(),
        _ => region_of(zone).to_owned(),
    }
}

/// A fingerprint: standard base64 of 8 bytes (the SDK decodes fingerprints as bytes).
pub(crate) fn fingerprint(n: u64) -> String {
    STANDARD.encode(n.to_be_bytes())
}

/// Now, RFC 3339.
pub(crate) fn now() -> String {
    jiff::Timestamp::now().to_string()
}

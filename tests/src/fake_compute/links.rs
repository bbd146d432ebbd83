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

/// `projects/P/regions/R/COLLECTION/NAME`.
pub(crate) fn regional(project: &str, region: &str, collection: &str, name: &str) -> String {
    format!("projects/{project}/regions/{region}/{collection}/{name}")
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

/// The full link of a region.
pub(crate) fn region_link(project: &str, region: &str) -> String {
    link(&format!("projects/{project}/regions/{region}"))
}

/// Where a resource or an operation lives: the project's global scope, a zone or a region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    Global,
    Zone(String),
    Region(String),
}

impl Scope {
    /// `projects/P/global`, `projects/P/zones/Z` or `projects/P/regions/R`.
    pub fn path(&self, project: &str) -> String {
        match self {
            Scope::Global => format!("projects/{project}/global"),
            Scope::Zone(zone) => format!("projects/{project}/zones/{zone}"),
            Scope::Region(region) => format!("projects/{project}/regions/{region}"),
        }
    }
}

/// A disk reference (full link or resource path) split into `(project, scope, name)`, when it
/// names a zonal or regional disk.
pub(crate) fn parse_disk(reference: &str) -> Option<(String, Scope, String)> {
    let path = reference.strip_prefix(API).map_or(reference, |p| p.trim_start_matches('/'));
    match path.split('/').collect::<Vec<_>>().as_slice() {
        ["projects", p, "zones", z, "disks", d] => Some((p.to_string(), Scope::Zone(z.to_string()), d.to_string())),
        ["projects", p, "regions", r, "disks", d] => Some((p.to_string(), Scope::Region(r.to_string()), d.to_string())),
        _ => None,
    }
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
    storage_location_of_region(region_of(zone))
}

/// The multi-region a snapshot is stored in by default, from the (regional) disk's region.
pub(crate) fn storage_location_of_region(region: &str) -> String {
    match region.split('-').next().unwrap_or(region) {
        "us" | "northamerica" | "southamerica" => "us".to_owned(),
        "europe" => "eu".to_owned(),
        "asia" | "australia" => "asia".to_owned(),
        _ => region.to_owned(),
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

//! Which call a request is: Compute's paths parsed by hand (custom verbs such as
//! `instances/{i}/setLabels` are awkward as axum routes).

use crate::fake_http::percent_decode;

/// A zonal resource reference from the path: `(project, zone, name)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Zonal {
    pub project: String,
    pub zone: String,
    pub name: String,
}

/// A regional resource reference from the path: `(project, region, name)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Regional {
    pub project: String,
    pub region: String,
    pub name: String,
}

/// A call that only reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Read {
    GetInstance(Zonal),
    ListInstances {
        project: String,
        zone: String,
    },
    AggregatedInstances {
        project: String,
    },
    GetSnapshot {
        project: String,
        name: String,
    },
    GetFirewall {
        project: String,
        name: String,
    },
    GetMig(Zonal),
    /// `instanceGroupManagers.listManagedInstances` (a POST, but a read).
    ListManagedInstances(Zonal),
    /// By operation path.
    GetOperation(String),
}

/// A call that changes something and returns an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mutation {
    SetLabels(Zonal),
    SetTags(Zonal),
    DeleteAccessConfig(Zonal),
    DeleteInstance(Zonal),
    /// The zonal disk.
    CreateSnapshot(Zonal),
    /// The regional disk (`regionDisks.createSnapshot`).
    CreateRegionalSnapshot(Regional),
    /// `snapshots.insert`: a snapshot in this project of the `sourceDisk` in the body, which may
    /// be in another project.
    InsertSnapshot {
        project: String,
    },
    InsertFirewall {
        project: String,
    },
    AbandonInstances(Zonal),
    DeleteInstances(Zonal),
}

impl Mutation {
    /// The `operationType` of the operation it creates.
    pub fn op_type(&self) -> &'static str {
        match self {
            Mutation::SetLabels(_) => "setLabels",
            Mutation::SetTags(_) => "setTags",
            Mutation::DeleteAccessConfig(_) => "deleteAccessConfig",
            Mutation::DeleteInstance(_) => "delete",
            Mutation::CreateSnapshot(_) | Mutation::CreateRegionalSnapshot(_) => "createSnapshot",
            Mutation::InsertSnapshot { .. } | Mutation::InsertFirewall { .. } => "insert",
            Mutation::AbandonInstances(_) => "abandonInstances",
            Mutation::DeleteInstances(_) => "deleteInstances",
        }
    }
}

/// A recognised call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Read(Read),
    /// By operation path; long-polls.
    WaitOperation(String),
    Mutate(Mutation),
}

/// The call for `method` and `path`, or `None` (404).
pub(crate) fn parse(method: &str, path: &str) -> Option<Route> {
    let segments: Vec<String> = path.strip_prefix("/compute/v1/projects/")?.split('/').map(percent_decode).collect();
    if segments.iter().any(String::is_empty) {
        return None;
    }
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let zonal = |p: &str, z: &str, n: &str| Zonal { project: p.to_owned(), zone: z.to_owned(), name: n.to_owned() };
    let route = match (method, s.as_slice()) {
        ("GET", [p, "aggregated", "instances"]) => Route::Read(Read::AggregatedInstances { project: p.to_string() }),
        ("GET", [p, "zones", z, "instances"]) => {
            Route::Read(Read::ListInstances { project: p.to_string(), zone: z.to_string() })
        }
        ("GET", [p, "zones", z, "instances", i]) => Route::Read(Read::GetInstance(zonal(p, z, i))),
        ("DELETE", [p, "zones", z, "instances", i]) => Route::Mutate(Mutation::DeleteInstance(zonal(p, z, i))),
        ("POST", [p, "zones", z, "instances", i, verb]) => Route::Mutate(match *verb {
            "setLabels" => Mutation::SetLabels(zonal(p, z, i)),
            "setTags" => Mutation::SetTags(zonal(p, z, i)),
            "deleteAccessConfig" => Mutation::DeleteAccessConfig(zonal(p, z, i)),
            _ => return None,
        }),
        ("POST", [p, "zones", z, "disks", d, "createSnapshot"]) => {
            Route::Mutate(Mutation::CreateSnapshot(zonal(p, z, d)))
        }
        ("POST", [p, "regions", r, "disks", d, "createSnapshot"]) => {
            let disk = Regional { project: p.to_string(), region: r.to_string(), name: d.to_string() };
            Route::Mutate(Mutation::CreateRegionalSnapshot(disk))
        }
        ("POST", [p, "global", "snapshots"]) => Route::Mutate(Mutation::InsertSnapshot { project: p.to_string() }),
        ("GET", [p, "global", "snapshots", n]) => {
            Route::Read(Read::GetSnapshot { project: p.to_string(), name: n.to_string() })
        }
        ("POST", [p, "global", "firewalls"]) => Route::Mutate(Mutation::InsertFirewall { project: p.to_string() }),
        ("GET", [p, "global", "firewalls", n]) => {
            Route::Read(Read::GetFirewall { project: p.to_string(), name: n.to_string() })
        }
        ("GET", [p, "zones", z, "instanceGroupManagers", m]) => Route::Read(Read::GetMig(zonal(p, z, m))),
        ("POST", [p, "zones", z, "instanceGroupManagers", m, verb]) => match *verb {
            "abandonInstances" => Route::Mutate(Mutation::AbandonInstances(zonal(p, z, m))),
            "deleteInstances" => Route::Mutate(Mutation::DeleteInstances(zonal(p, z, m))),
            "listManagedInstances" => Route::Read(Read::ListManagedInstances(zonal(p, z, m))),
            _ => return None,
        },
        ("GET", [p, "zones", z, "operations", o]) => {
            Route::Read(Read::GetOperation(format!("projects/{p}/zones/{z}/operations/{o}")))
        }
        ("POST", [p, "zones", z, "operations", o, "wait"]) => {
            Route::WaitOperation(format!("projects/{p}/zones/{z}/operations/{o}"))
        }
        ("GET", [p, "regions", r, "operations", o]) => {
            Route::Read(Read::GetOperation(format!("projects/{p}/regions/{r}/operations/{o}")))
        }
        ("POST", [p, "regions", r, "operations", o, "wait"]) => {
            Route::WaitOperation(format!("projects/{p}/regions/{r}/operations/{o}"))
        }
        ("GET", [p, "global", "operations", o]) => {
            Route::Read(Read::GetOperation(format!("projects/{p}/global/operations/{o}")))
        }
        ("POST", [p, "global", "operations", o, "wait"]) => {
            Route::WaitOperation(format!("projects/{p}/global/operations/{o}"))
        }
        _ => return None,
    };
    Some(route)
}

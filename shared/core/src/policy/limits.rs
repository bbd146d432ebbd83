//! Blast-radius limits as a policy file writes them: at most `max` nodes (or pods) contained
//! automatically `per` window, and at most `percent` of a node pool's nodes, for the whole file
//! (`limits:` at the top) and for one policy (`limits:` in it). What happens past one is
//! [`crate::limits`].

use std::time::Duration;

use serde_json::Value;

use super::decode::{Decoder, join};
use super::{format_duration, parse_duration};

/// The most objects a limit may allow: the store keeps one entry per object contained in the
/// window, so a limit also bounds what it stores.
pub const MAX_LIMIT: u32 = 1000;

/// What a limit counts: distinct objects cut off automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    /// Nodes and VMs (a GKE node and its VM are one).
    Nodes,
    /// Pods.
    Pods,
}

impl Unit {
    /// Every unit, as written in policy files.
    pub const ALL: [Unit; 2] = [Unit::Nodes, Unit::Pods];

    /// The key in a policy file's `limits:` (`nodes`).
    pub fn name(self) -> &'static str {
        match self {
            Unit::Nodes => "nodes",
            Unit::Pods => "pods",
        }
    }
}

/// At most `max` objects in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Objects contained automatically within the window.
    pub max: u32,
    /// The sliding window.
    pub per: Duration,
}

impl Limit {
    /// `3 nodes in 1h`.
    pub fn describe(&self, unit: Unit) -> String {
        format!("{} {} in {}", self.max, unit.name(), format_duration(self.per))
    }
}

/// At most `percent` of a GKE node pool's nodes in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimit {
    /// 1–100; rounded down to whole nodes, so 20 % of a 4-node pool is none.
    pub percent: u32,
    /// The sliding window.
    pub per: Duration,
}

impl PoolLimit {
    /// `20% of a node pool in 1h`.
    pub fn describe(&self) -> String {
        format!("{}% of a node pool in {}", self.percent, format_duration(self.per))
    }

    /// The limit this is on a pool of `nodes` nodes.
    pub fn of(&self, nodes: u32) -> Limit {
        Limit { max: (u64::from(nodes) * u64::from(self.percent) / 100) as u32, per: self.per }
    }
}

/// The limits of one scope (the file, or one policy), by unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Nodes and VMs.
    pub nodes: Option<Limit>,
    /// Pods.
    pub pods: Option<Limit>,
    /// Nodes of any one node pool, as a share of the pool.
    pub node_pool: Option<PoolLimit>,
}

impl Limits {
    /// The limit on `unit`, if there is one.
    pub fn on(&self, unit: Unit) -> Option<Limit> {
        match unit {
            Unit::Nodes => self.nodes,
            Unit::Pods => self.pods,
        }
    }

    /// `3 nodes in 1h, 20 pods in 1h, 20% of a node pool in 1h`, or `none`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Unit::ALL.iter().filter_map(|&u| self.on(u).map(|l| l.describe(u))).collect();
        if let Some(pool) = self.node_pool {
            parts.push(pool.describe());
        }
        if parts.is_empty() { "none".into() } else { parts.join(", ") }
    }
}

const UNIT_KEYS: [&str; 3] = ["nodes", "pods", "node_pool"];
const LIMIT_KEYS: [&str; 2] = ["max", "per"];
const POOL_KEYS: [&str; 2] = ["percent", "per"];

/// Decodes the window `per` of the limit at `path`.
fn decode_per(d: &mut Decoder, fields: &serde_json::Map<String, Value>, path: &str) -> Option<Duration> {
    d.required::<String>(fields, "per", path).and_then(|s| match parse_duration(&s) {
        Ok(p) if p >= Duration::from_secs(60) && p <= Duration::from_secs(7 * 86_400) => Some(p),
        Ok(_) => {
            d.error(join(path, "per"), "per must be between 1m and 7d");
            None
        }
        Err(e) => {
            d.error(join(path, "per"), e);
            None
        }
    })
}

/// Decodes `limits:` at `path`, recording every error.
pub(super) fn decode_limits(d: &mut Decoder, value: &Value, path: &str) -> Limits {
    let mut limits = Limits::default();
    let Some(obj) = d.object(value, path, &UNIT_KEYS) else { return limits };
    for unit in Unit::ALL {
        let Some(v) = obj.get(unit.name()).filter(|v| !v.is_null()) else { continue };
        let upath = join(path, unit.name());
        let Some(fields) = d.object(v, &upath, &LIMIT_KEYS) else { continue };
        let max = d.required::<u32>(fields, "max", &upath);
        if let Some(m) = max
            && !(1..=MAX_LIMIT).contains(&m)
        {
            d.error(
                join(&upath, "max"),
                format!("max must be between 1 and {MAX_LIMIT} (to contain nothing automatically, move the actions to on_approval)"),
            );
        }
        let per = decode_per(d, fields, &upath);
        let limit = match (max, per) {
            (Some(max), Some(per)) if (1..=MAX_LIMIT).contains(&max) => Some(Limit { max, per }),
            _ => None,
        };
        match unit {
            Unit::Nodes => limits.nodes = limit,
            Unit::Pods => limits.pods = limit,
        }
    }
    if let Some(v) = obj.get("node_pool").filter(|v| !v.is_null()) {
        let ppath = join(path, "node_pool");
        if let Some(fields) = d.object(v, &ppath, &POOL_KEYS) {
            let percent = d.required::<u32>(fields, "percent", &ppath).filter(|p| {
                let ok = (1..=100).contains(p);
                if !ok {
                    d.error(join(&ppath, "percent"), "percent must be between 1 and 100");
                }
                ok
            });
            let per = decode_per(d, fields, &ppath);
            limits.node_pool = percent.zip(per).map(|(percent, per)| PoolLimit { percent, per });
        }
    }
    limits
}

//! Policies: strict YAML (unknown keys are errors) → a pure validation that reports every error
//! with its path → a compiled [`PolicySet`] used for the life of the process.

mod condition;
mod decode;
pub mod duration;
pub mod glob;
mod limits;
mod matcher;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::action::{ACTION_NAMES, Action, ActionClass};
use crate::alert::{Alert, ResourceHints};
use crate::names::{ClusterName, Location, Namespace, ProjectId};
pub use condition::{CEL_VARIABLES, Condition};
use decode::{Decoder, index, join};
pub use duration::{format_duration, parse_duration};
pub use limits::{Limit, Limits, MAX_LIMIT, PoolLimit, Unit};
pub use matcher::{Comparator, Matcher, SeverityFilter, TagFilter};

/// One problem in a policy file, located by its path (`policies[2].actions[0]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyError {
    /// Where: a dotted path with `[index]` for list items; empty for the whole file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { write!(f, "{}", self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// Every problem found in a policy file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} error(s) in the policy file:", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

/// Fallbacks for alerts that do not say where they happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Project used when an alert names none (old Falco without customfields).
    #[serde(default)]
    pub project: Option<ProjectId>,
    /// Cluster location used when an alert names none.
    #[serde(default)]
    pub location: Option<Location>,
    /// Cluster used when an alert names none.
    #[serde(default)]
    pub cluster: Option<ClusterName>,
    /// Namespaces where workloads are never deleted unless a policy names them (kube-system always is).
    #[serde(default)]
    pub protected_namespaces: Vec<Namespace>,
}

impl Defaults {
    /// The defaults as resource hints, to fill what an alert left empty.
    pub fn hints(&self) -> ResourceHints {
        ResourceHints {
            project: self.project.clone(),
            location: self.location.clone(),
            cluster: self.cluster.clone(),
            ..ResourceHints::default()
        }
    }
}

/// A notification target. Webhook URLs are secrets, so the policy names the environment
/// variable that holds one, never the URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum NotifierConfig {
    /// Print to riposte's standard output and log (the local default).
    Console {},
    /// A Slack incoming webhook (Block Kit message with link buttons).
    Slack {
        /// Environment variable holding the webhook URL.
        url_env: String,
    },
    /// A Google Chat incoming webhook (cardsV2 message with link buttons).
    GoogleChat {
        /// Environment variable holding the webhook URL.
        url_env: String,
    },
    /// Any HTTPS endpoint receiving riposte's JSON document.
    Webhook {
        /// Environment variable holding the URL.
        url_env: String,
    },
}

impl NotifierConfig {
    /// The environment variable holding the URL, for webhook notifiers.
    pub fn url_env(&self) -> Option<&str> {
        match self {
            NotifierConfig::Console {} => None,
            NotifierConfig::Slack { url_env }
            | NotifierConfig::GoogleChat { url_env }
            | NotifierConfig::Webhook { url_env } => Some(url_env),
        }
    }
}

/// Approval settings of a policy's `on_approval` steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalSettings {
    /// How long an approval link stays valid.
    #[serde(with = "duration_serde")]
    pub expires_in: Duration,
    /// Who may approve (emails); anyone holding a link when empty.
    pub approvers: Vec<String>,
    /// Distinct approvals needed.
    pub required: u32,
    /// Actions that need more approvals than `required` (two-person rule), by action name.
    pub required_for: BTreeMap<String, u32>,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        ApprovalSettings {
            expires_in: Duration::from_secs(30 * 60),
            approvers: Vec::new(),
            required: 1,
            required_for: BTreeMap::new(),
        }
    }
}

impl ApprovalSettings {
    /// The most approvals any action of the policy can need (2 or more: the two-person rule).
    pub fn most_required(&self) -> u32 {
        self.required_for.values().copied().fold(self.required, u32::max)
    }

    /// Approvals needed before `actions` may run.
    pub fn required_for_actions(&self, actions: &[Action]) -> u32 {
        actions.iter().filter_map(|a| self.required_for.get(a.name())).copied().fold(self.required, u32::max)
    }
}

mod duration_serde {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        super::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// What alerts are grouped by to form one incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupKey {
    /// The alert's source.
    Source,
    /// The rule / policy / method that fired.
    Rule,
    /// The severity.
    Severity,
    /// A resource hint (`resource.node`).
    Resource(&'static str),
    /// A field (`fields.proc.name`).
    Field(String),
}

impl GroupKey {
    fn parse(s: &str) -> Result<GroupKey, String> {
        match s {
            "source" => Ok(GroupKey::Source),
            "rule" => Ok(GroupKey::Rule),
            "severity" => Ok(GroupKey::Severity),
            _ => {
                if let Some(hint) = s.strip_prefix("resource.") {
                    ResourceHints::NAMES.iter().find(|n| **n == hint).map(|n| GroupKey::Resource(n)).ok_or_else(|| {
                        format!("unknown resource hint {hint:?}; expected one of {}", ResourceHints::NAMES.join(", "))
                    })
                } else if let Some(field) = s.strip_prefix("fields.").filter(|f| !f.is_empty()) {
                    Ok(GroupKey::Field(field.to_string()))
                } else {
                    Err(format!(
                        "unknown group_by key {s:?}; expected source, rule, severity, resource.<hint> or fields.<name>"
                    ))
                }
            }
        }
    }

    /// The key as written in policies.
    pub fn name(&self) -> String {
        match self {
            GroupKey::Source => "source".into(),
            GroupKey::Rule => "rule".into(),
            GroupKey::Severity => "severity".into(),
            GroupKey::Resource(h) => format!("resource.{h}"),
            GroupKey::Field(f) => format!("fields.{f}"),
        }
    }

    /// The alert's value for this key (empty when absent).
    pub fn value(&self, alert: &Alert) -> String {
        match self {
            GroupKey::Source => alert.source.as_str().into(),
            GroupKey::Rule => alert.rule.clone(),
            GroupKey::Severity => alert.severity.as_str().into(),
            GroupKey::Resource(h) => alert.resource.get(h).unwrap_or_default().into(),
            GroupKey::Field(f) => alert.field_str(f).unwrap_or_default(),
        }
    }
}

/// The default `group_by`: one incident per rule and affected object.
pub const DEFAULT_GROUP_BY: [&str; 8] = [
    "rule",
    "resource.project",
    "resource.cluster",
    "resource.namespace",
    "resource.pod",
    "resource.node",
    "resource.instance",
    "resource.instance_id",
];

/// The default `dedup_window`.
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(15 * 60);

/// One compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Unique name.
    pub name: String,
    /// What the policy is for.
    pub description: String,
    /// Which alerts it takes.
    pub matcher: Matcher,
    /// Incident key parts.
    pub group_by: Vec<GroupKey>,
    /// Alerts with the same key inside this window join the open incident.
    pub dedup_window: Duration,
    /// Safe actions run automatically.
    pub actions: Vec<Action>,
    /// Actions run only after approval.
    pub on_approval: Vec<Action>,
    /// Approval settings.
    pub approval: ApprovalSettings,
    /// Notifier names.
    pub notify: Vec<String>,
    /// Keep evaluating later policies after this one matched.
    pub continue_matching: bool,
    /// Never call a real API for this policy: record the requests only.
    pub dry_run: bool,
    /// How much of its automatic containment may run without a human ([`crate::limits`]).
    pub limits: Limits,
}

/// A whole policy file, compiled.
#[derive(Debug, Clone)]
pub struct PolicySet {
    /// Fallback resource hints.
    pub defaults: Defaults,
    /// Notification targets by name (always includes `console`).
    pub notifiers: BTreeMap<String, NotifierConfig>,
    /// Policies in file order; the first match wins unless it says `continue: true`.
    pub policies: Vec<Policy>,
    /// Limits on automatic containment across every policy of the file ([`crate::limits`]).
    pub limits: Limits,
}

impl PolicySet {
    /// Parses and validates a YAML policy file, reporting every error at once.
    pub fn from_yaml(text: &str) -> Result<PolicySet, PolicyErrors> {
        let value: Value = serde_saphyr::from_str(text).map_err(|e| {
            PolicyErrors(vec![PolicyError { path: String::new(), message: format!("not valid YAML: {e}") }])
        })?;
        let mut d = Decoder::default();
        let set = decode_file(&mut d, &value);
        match set {
            Some(set) if d.errors.is_empty() => Ok(set),
            _ => Err(PolicyErrors(d.errors)),
        }
    }

    /// Fills what alerts leave unsaid from `defaults`, so scopes, incident keys and targets all see
    /// the same resource.
    pub fn apply_defaults(&self, alerts: &mut [Alert]) {
        for alert in alerts {
            alert.resource.fill_from(self.defaults.hints());
        }
    }

    /// The policies that take `alert`, in order (stopping after the first unless it continues).
    pub fn matches(&self, alert: &Alert) -> Vec<&Policy> {
        let mut out = Vec::new();
        for policy in &self.policies {
            if policy.matcher.accepts(alert) {
                out.push(policy);
                if !policy.continue_matching {
                    break;
                }
            }
        }
        out
    }

    /// For each policy, why it does or does not take `alert` (for `riposte replay`).
    pub fn explain<'a>(&'a self, alert: &Alert) -> Vec<(&'a Policy, Result<Vec<String>, String>)> {
        self.policies.iter().map(|p| (p, p.matcher.explain(alert))).collect()
    }
}

const FILE_KEYS: [&str; 5] = ["version", "defaults", "notifiers", "limits", "policies"];
const POLICY_KEYS: [&str; 12] = [
    "name",
    "description",
    "match",
    "group_by",
    "dedup_window",
    "actions",
    "on_approval",
    "approval",
    "notify",
    "continue",
    "dry_run",
    "limits",
];
const APPROVAL_KEYS: [&str; 4] = ["expires_in", "approvers", "required", "required_for"];

fn decode_file(d: &mut Decoder, value: &Value) -> Option<PolicySet> {
    if value.is_null() {
        d.error("", "the policy file is empty");
        return None;
    }
    let obj = d.object(value, "", &FILE_KEYS)?;
    if let Some(v) = d.field::<u32>(obj, "version", "")
        && v != 1
    {
        d.error("version", format!("unsupported version {v}; this riposte reads version 1"));
    }
    let defaults: Defaults = d.field(obj, "defaults", "").unwrap_or_default();
    let mut notifiers: BTreeMap<String, NotifierConfig> = d.field(obj, "notifiers", "").unwrap_or_default();
    notifiers.entry("console".into()).or_insert(NotifierConfig::Console {});
    for (name, n) in &notifiers {
        if let Some(var) = n.url_env()
            && (var.is_empty() || !var.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        {
            d.error(
                format!("notifiers.{name}.url_env"),
                format!("{var:?} is not an environment variable name (A-Z, 0-9, _)"),
            );
        }
    }

    let limits = obj.get("limits").map(|l| limits::decode_limits(d, l, "limits")).unwrap_or_default();
    let items: Vec<Value> = d.required(obj, "policies", "").unwrap_or_default();
    if items.is_empty() && obj.contains_key("policies") {
        d.error("policies", "no policies: the file would never act on anything");
    }
    let mut names = BTreeSet::new();
    let mut policies = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = index("policies", i);
        if let Some(p) = decode_policy(d, item, &path, &notifiers) {
            if !names.insert(p.name.clone()) {
                d.error(join(&path, "name"), format!("duplicate policy name {:?}", p.name));
            }
            policies.push(p);
        }
    }
    Some(PolicySet { defaults, notifiers, policies, limits })
}

fn decode_policy(
    d: &mut Decoder,
    value: &Value,
    path: &str,
    notifiers: &BTreeMap<String, NotifierConfig>,
) -> Option<Policy> {
    let obj = d.object(value, path, &POLICY_KEYS)?;
    let name: Option<String> = d.required(obj, "name", path);
    if let Some(n) = &name
        && (n.trim().is_empty() || n.len() > 100 || n.chars().any(char::is_control))
    {
        d.error(join(path, "name"), "a policy name is 1-100 printable characters");
    }
    let matcher = match obj.get("match") {
        Some(m) => Matcher::decode(d, m, &join(path, "match")),
        None => {
            d.error(join(path, "match"), "`match` is required (write `match: {}` to take every alert)");
            Matcher::default()
        }
    };
    let group_by = match d.field::<Vec<String>>(obj, "group_by", path) {
        Some(keys) => keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| GroupKey::parse(k).map_err(|e| d.error(index(&join(path, "group_by"), i), e)).ok())
            .collect(),
        None => DEFAULT_GROUP_BY.iter().filter_map(|k| GroupKey::parse(k).ok()).collect(),
    };
    let dedup_window = match d.field::<String>(obj, "dedup_window", path) {
        Some(s) => match parse_duration(&s) {
            Ok(w) if w >= Duration::from_secs(1) && w <= Duration::from_secs(7 * 86_400) => w,
            Ok(_) => {
                d.error(join(path, "dedup_window"), "dedup_window must be between 1s and 7d");
                DEFAULT_DEDUP_WINDOW
            }
            Err(e) => {
                d.error(join(path, "dedup_window"), e);
                DEFAULT_DEDUP_WINDOW
            }
        },
        None => DEFAULT_DEDUP_WINDOW,
    };
    let actions = decode_actions(d, obj.get("actions"), &join(path, "actions"), true);
    let on_approval = decode_actions(d, obj.get("on_approval"), &join(path, "on_approval"), false);
    let approval = match obj.get("approval") {
        Some(a) => decode_approval(d, a, &join(path, "approval"), &on_approval),
        None => ApprovalSettings::default(),
    };
    if obj.get("approval").is_some() && on_approval.is_empty() {
        d.error(join(path, "approval"), "approval settings without on_approval actions have nothing to approve");
    }
    let notify: Vec<String> = d.field(obj, "notify", path).unwrap_or_else(|| vec!["console".into()]);
    for (i, n) in notify.iter().enumerate() {
        if !notifiers.contains_key(n) {
            let known: Vec<&str> = notifiers.keys().map(String::as_str).collect();
            d.error(index(&join(path, "notify"), i), format!("unknown notifier {n:?}; defined: {}", known.join(", ")));
        }
    }
    let limits = obj.get("limits").map(|l| limits::decode_limits(d, l, &join(path, "limits"))).unwrap_or_default();
    Some(Policy {
        name: name?,
        description: d.field(obj, "description", path).unwrap_or_default(),
        matcher,
        group_by,
        dedup_window,
        actions,
        on_approval,
        approval,
        notify,
        continue_matching: d.field(obj, "continue", path).unwrap_or(false),
        dry_run: d.field(obj, "dry_run", path).unwrap_or(false),
        limits,
    })
}

fn decode_actions(d: &mut Decoder, value: Option<&Value>, path: &str, automatic: bool) -> Vec<Action> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Vec::new() };
    let Some(items) = value.as_array() else {
        d.error(path, "expected a list of actions");
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let ipath = index(path, i);
        // `- cordon_node` and `- cordon_node:` mean `- cordon_node: {}`.
        let normalized = match item {
            Value::String(name) => serde_json::json!({ name: {} }),
            Value::Object(o) if o.len() == 1 => {
                let (k, v) = o.iter().next().map(|(k, v)| (k.clone(), v.clone())).unwrap_or_default();
                serde_json::json!({ k: if v.is_null() { serde_json::json!({}) } else { v } })
            }
            Value::Object(o) if o.len() > 1 => {
                d.error(&ipath, "one action per list item; start each action with its own `-`");
                continue;
            }
            _ => {
                d.error(&ipath, format!("expected an action name, one of: {}", ACTION_NAMES.join(", ")));
                continue;
            }
        };
        let name = normalized.as_object().and_then(|o| o.keys().next()).cloned().unwrap_or_default();
        if !ACTION_NAMES.contains(&name.as_str()) {
            d.error(&ipath, format!("unknown action `{name}`; expected one of: {}", ACTION_NAMES.join(", ")));
            continue;
        }
        let Some(action) = d.value::<Action>(&normalized, &ipath) else { continue };
        for (field, message) in action.validate() {
            d.error(join(&join(&ipath, &name), &field), message);
        }
        if automatic && action.class() == ActionClass::Destructive {
            d.error(&ipath, format!("{name} is destructive and cannot run automatically; move it to on_approval"));
        }
        if !seen.insert(name.clone()) {
            d.error(&ipath, format!("{name} is listed twice"));
        }
        out.push(action);
    }
    out
}

fn decode_approval(d: &mut Decoder, value: &Value, path: &str, on_approval: &[Action]) -> ApprovalSettings {
    let mut s = ApprovalSettings::default();
    let Some(obj) = d.object(value, path, &APPROVAL_KEYS) else { return s };
    if let Some(e) = d.field::<String>(obj, "expires_in", path) {
        match parse_duration(&e) {
            Ok(v) if v >= Duration::from_secs(60) && v <= Duration::from_secs(86_400) => s.expires_in = v,
            Ok(_) => d.error(join(path, "expires_in"), "expires_in must be between 1m and 24h"),
            Err(msg) => d.error(join(path, "expires_in"), msg),
        }
    }
    s.approvers = d.field(obj, "approvers", path).unwrap_or_default();
    let mut seen = BTreeSet::new();
    for (i, a) in s.approvers.iter().enumerate() {
        if !seen.insert(a.to_ascii_lowercase()) {
            d.error(index(&join(path, "approvers"), i), format!("{a:?} is listed twice"));
        }
    }
    for (i, a) in s.approvers.iter().enumerate() {
        if !a.contains('@') || a.contains(char::is_whitespace) {
            d.error(index(&join(path, "approvers"), i), format!("{a:?} is not an email address"));
        }
    }
    s.required = d.field(obj, "required", path).unwrap_or(1);
    s.required_for = d.field(obj, "required_for", path).unwrap_or_default();
    let mut check = |p: String, n: u32| {
        if n == 0 {
            d.error(p, "at least one approval is required");
        } else if !s.approvers.is_empty() && n as usize > s.approvers.len() {
            d.error(p, format!("{n} approvals required but only {} approver(s) listed", s.approvers.len()));
        }
    };
    check(join(path, "required"), s.required);
    for (action, n) in &s.required_for {
        check(join(&join(path, "required_for"), action), *n);
    }
    for action in s.required_for.keys() {
        if !on_approval.iter().any(|a| a.name() == action) {
            d.error(
                join(&join(path, "required_for"), action),
                format!("{action} is not one of this policy's on_approval actions"),
            );
        }
    }
    s
}

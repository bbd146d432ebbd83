//! The compiled `match` block of a policy, and its explanation of why an alert did or did not match.

use serde_json::Value;

use super::condition::Condition;
use super::decode::{Decoder, join};
use super::glob::Glob;
use crate::alert::{Alert, AlertStatus, ResourceHints, Source};
use crate::severity::Severity;

/// A comparison against the severity scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    /// `>=` (the default when a bare level is written).
    AtLeast,
    /// `>`.
    Above,
    /// `==`.
    Exactly,
    /// `<=`.
    AtMost,
    /// `<`.
    Below,
}

/// `severity: ">= critical"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeverityFilter {
    /// How to compare.
    pub comparator: Comparator,
    /// The level compared with.
    pub level: Severity,
}

impl SeverityFilter {
    /// Parses `critical`, `>= critical`, `> error`, `== warning`, `<= notice`, `< info`.
    pub fn parse(s: &str) -> Result<SeverityFilter, String> {
        let s = s.trim();
        let (comparator, rest) = [
            (">=", Comparator::AtLeast),
            ("<=", Comparator::AtMost),
            ("==", Comparator::Exactly),
            (">", Comparator::Above),
            ("<", Comparator::Below),
            ("=", Comparator::Exactly),
        ]
        .iter()
        .find_map(|(op, c)| s.strip_prefix(op).map(|rest| (*c, rest)))
        .unwrap_or((Comparator::AtLeast, s));
        let level = rest.trim().parse::<Severity>().map_err(|e| e.to_string())?;
        Ok(SeverityFilter { comparator, level })
    }

    /// Whether `severity` passes.
    pub fn accepts(&self, severity: Severity) -> bool {
        match self.comparator {
            Comparator::AtLeast => severity >= self.level,
            Comparator::Above => severity > self.level,
            Comparator::Exactly => severity == self.level,
            Comparator::AtMost => severity <= self.level,
            Comparator::Below => severity < self.level,
        }
    }

    fn describe(&self) -> String {
        let op = match self.comparator {
            Comparator::AtLeast => ">=",
            Comparator::Above => ">",
            Comparator::Exactly => "==",
            Comparator::AtMost => "<=",
            Comparator::Below => "<",
        };
        format!("{op} {}", self.level)
    }
}

/// Tag conditions: all of, any of, none of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagFilter {
    /// Every one of these tags must be present.
    pub all: Vec<String>,
    /// At least one of these (when not empty).
    pub any: Vec<String>,
    /// None of these.
    pub none: Vec<String>,
}

/// One predicate on a field; every operator given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldPredicate {
    eq: Option<String>,
    ne: Option<String>,
    one_of: Option<Vec<String>>,
    not_in: Option<Vec<String>>,
    globs: Option<Vec<Glob>>,
    exists: Option<bool>,
    bounds: Vec<(&'static str, f64)>,
}

/// The operators a field predicate accepts.
const FIELD_OPS: [&str; 10] = ["eq", "ne", "in", "not_in", "glob", "exists", "gt", "gte", "lt", "lte"];

/// Renders a scalar for comparison: strings as themselves, everything else as JSON.
fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl FieldPredicate {
    fn decode(d: &mut Decoder, value: &Value, path: &str) -> Option<FieldPredicate> {
        let obj = d.object(value, path, &FIELD_OPS)?;
        if obj.is_empty() {
            d.error(path, format!("a field predicate needs at least one of: {}", FIELD_OPS.join(", ")));
            return None;
        }
        let scalars = |d: &mut Decoder, key: &str| -> Option<Vec<String>> {
            let list: Vec<Value> = d.field(obj, key, path)?;
            Some(list.iter().map(render).collect())
        };
        let mut p = FieldPredicate {
            eq: obj.get("eq").map(render),
            ne: obj.get("ne").map(render),
            one_of: scalars(d, "in"),
            not_in: scalars(d, "not_in"),
            globs: match obj.get("glob") {
                None => None,
                Some(Value::String(s)) => Some(vec![Glob::new(s)]),
                Some(_) => d.field::<Vec<String>>(obj, "glob", path).map(|g| g.iter().map(|s| Glob::new(s)).collect()),
            },
            exists: d.field(obj, "exists", path),
            bounds: Vec::new(),
        };
        for op in ["gt", "gte", "lt", "lte"] {
            if let Some(n) = d.field::<f64>(obj, op, path) {
                p.bounds.push((op, n));
            }
        }
        Some(p)
    }

    /// Whether the field value `v` (absent: `None`) satisfies the predicate.
    fn accepts(&self, v: Option<&Value>) -> bool {
        let present = v.is_some_and(|v| !v.is_null());
        if let Some(want) = self.exists
            && want != present
        {
            return false;
        }
        let text = v.filter(|v| !v.is_null()).map(render);
        let number = v.and_then(|v| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        });
        let t = text.as_deref();
        self.eq.as_deref().is_none_or(|e| t == Some(e))
            && self.ne.as_deref().is_none_or(|e| t != Some(e))
            && self.one_of.as_ref().is_none_or(|l| t.is_some_and(|t| l.iter().any(|x| x == t)))
            && self.not_in.as_ref().is_none_or(|l| !t.is_some_and(|t| l.iter().any(|x| x == t)))
            && self.globs.as_ref().is_none_or(|g| t.is_some_and(|t| g.iter().any(|g| g.matches(t))))
            && self.bounds.iter().all(|(op, bound)| {
                number.is_some_and(|n| match *op {
                    "gt" => n > *bound,
                    "gte" => n >= *bound,
                    "lt" => n < *bound,
                    _ => n <= *bound,
                })
            })
    }
}

/// Resource scope: for each hint (`projects`, `clusters`, `namespaces`, …) the globs it must match,
/// and `exclude_*` globs it must not match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceScope {
    include: Vec<(&'static str, Vec<Glob>)>,
    exclude: Vec<(&'static str, Vec<Glob>)>,
}

/// Scope keys and the hint each one checks.
const SCOPE_KEYS: [(&str, &str); 8] = [
    ("projects", "project"),
    ("locations", "location"),
    ("zones", "zone"),
    ("clusters", "cluster"),
    ("namespaces", "namespace"),
    ("pods", "pod"),
    ("nodes", "node"),
    ("instances", "instance"),
];

impl ResourceScope {
    fn decode(d: &mut Decoder, value: &Value, path: &str) -> ResourceScope {
        let excludes: Vec<String> = SCOPE_KEYS.iter().map(|(k, _)| format!("exclude_{k}")).collect();
        let mut known: Vec<&str> = SCOPE_KEYS.iter().map(|(k, _)| *k).collect();
        known.extend(excludes.iter().map(String::as_str));
        let mut scope = ResourceScope::default();
        let Some(obj) = d.object(value, path, &known) else { return scope };
        for (key, hint) in SCOPE_KEYS {
            if let Some(globs) = d.field::<Vec<String>>(obj, key, path) {
                scope.include.push((hint, globs.iter().map(|g| Glob::new(g)).collect()));
            }
            if let Some(globs) = d.field::<Vec<String>>(obj, &format!("exclude_{key}"), path) {
                scope.exclude.push((hint, globs.iter().map(|g| Glob::new(g)).collect()));
            }
        }
        scope
    }

    fn check<W: Witness>(&self, hints: &ResourceHints) -> Result<(), W::Refusal> {
        for (hint, globs) in &self.include {
            match hints.get(hint) {
                Some(v) if globs.iter().any(|g| g.matches(v)) => {}
                Some(v) => return Err(W::refuse(|| format!("{hint} {v:?} is outside the policy's scope"))),
                None => {
                    return Err(W::refuse(|| format!("the alert names no {hint}, and the policy is scoped by {hint}")));
                }
            }
        }
        for (hint, globs) in &self.exclude {
            if let Some(v) = hints.get(hint)
                && globs.iter().any(|g| g.matches(v))
            {
                return Err(W::refuse(|| format!("{hint} {v:?} is excluded by the policy")));
            }
        }
        Ok(())
    }
}

/// What a check of an alert against a `match` block keeps. `riposte replay` keeps every reason
/// (`Vec<String>`); admission keeps only the verdict ([`Verdict`]): nothing reads its reasons,
/// and formatting them was ~1 % of an alert's CPU in a storm. One check serves both, so the
/// verdict and its explanation cannot disagree.
pub(super) trait Witness {
    /// What a failed criterion leaves.
    type Refusal;
    /// Notes a criterion the alert met.
    fn because(&mut self, reason: impl FnOnce() -> String);
    /// The refusal for the first criterion the alert failed.
    fn refuse(reason: impl FnOnce() -> String) -> Self::Refusal;
}

impl Witness for Vec<String> {
    type Refusal = String;
    fn because(&mut self, reason: impl FnOnce() -> String) {
        self.push(reason());
    }
    fn refuse(reason: impl FnOnce() -> String) -> String {
        reason()
    }
}

/// Keeps nothing but whether the alert matched.
pub(super) struct Verdict;

impl Witness for Verdict {
    type Refusal = ();
    fn because(&mut self, _: impl FnOnce() -> String) {}
    fn refuse(_: impl FnOnce() -> String) {}
}

/// A compiled `match` block.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    sources: Vec<Source>,
    severity: Option<SeverityFilter>,
    rules: Vec<Glob>,
    tags: TagFilter,
    fields: Vec<(String, FieldPredicate)>,
    resource: ResourceScope,
    when: Option<Condition>,
}

/// Keys of a `match` block.
pub(super) const MATCH_KEYS: [&str; 7] = ["sources", "severity", "rules", "tags", "fields", "resource", "when"];

impl Matcher {
    /// Decodes a `match` block, recording every error.
    pub(super) fn decode(d: &mut Decoder, value: &Value, path: &str) -> Matcher {
        let mut m = Matcher::default();
        let Some(obj) = d.object(value, path, &MATCH_KEYS) else { return m };
        m.sources = d.field(obj, "sources", path).unwrap_or_default();
        if let Some(s) = d.field::<String>(obj, "severity", path) {
            match SeverityFilter::parse(&s) {
                Ok(f) => m.severity = Some(f),
                Err(e) => d.error(join(path, "severity"), e),
            }
        }
        m.rules = match obj.get("rules") {
            Some(Value::String(r)) => vec![Glob::new(r)],
            _ => d.field::<Vec<String>>(obj, "rules", path).unwrap_or_default().iter().map(|r| Glob::new(r)).collect(),
        };
        if let Some(tags) = obj.get("tags") {
            let tpath = join(path, "tags");
            if tags.is_array() {
                m.tags.all = d.value(tags, &tpath).unwrap_or_default();
            } else if let Some(t) = d.object(tags, &tpath, &["all", "any", "none"]) {
                m.tags.all = d.field(t, "all", &tpath).unwrap_or_default();
                m.tags.any = d.field(t, "any", &tpath).unwrap_or_default();
                m.tags.none = d.field(t, "none", &tpath).unwrap_or_default();
            }
        }
        if let Some(fields) = obj.get("fields") {
            let fpath = join(path, "fields");
            match fields.as_object() {
                None => d.error(&fpath, "expected a mapping of field name to predicate"),
                Some(f) => {
                    for (name, pred) in f {
                        let ppath = format!("{fpath}.{name:?}");
                        if let Some(p) = FieldPredicate::decode(d, pred, &ppath) {
                            m.fields.push((name.clone(), p));
                        }
                    }
                }
            }
        }
        if let Some(r) = obj.get("resource") {
            m.resource = ResourceScope::decode(d, r, &join(path, "resource"));
        }
        if let Some(expr) = d.field::<String>(obj, "when", path) {
            match Condition::compile(&expr) {
                Ok(c) => m.when = Some(c),
                Err(e) => d.error(join(path, "when"), e),
            }
        }
        m
    }

    /// Why `alert` matches (`Ok`, one reason per criterion), or the first criterion it fails (`Err`).
    pub fn explain(&self, alert: &Alert) -> Result<Vec<String>, String> {
        let mut why = Vec::new();
        self.judge(alert, &mut why)?;
        Ok(why)
    }

    /// Whether `alert` matches, with no reasons made.
    pub fn accepts(&self, alert: &Alert) -> bool {
        self.judge(alert, &mut Verdict).is_ok()
    }

    fn judge<W: Witness>(&self, alert: &Alert, why: &mut W) -> Result<(), W::Refusal> {
        if alert.status == AlertStatus::Resolved {
            why.because(|| "alert is resolved: recorded, never starts actions".into());
        }
        if self.sources.is_empty() {
            why.because(|| "any source".into());
        } else if self.sources.contains(&alert.source) {
            why.because(|| format!("source {} is one of {:?}", alert.source, self.sources_str()));
        } else {
            return Err(W::refuse(|| format!("source {} is not one of {:?}", alert.source, self.sources_str())));
        }
        if let Some(f) = &self.severity {
            if !f.accepts(alert.severity) {
                return Err(W::refuse(|| format!("severity {} is not {}", alert.severity, f.describe())));
            }
            why.because(|| format!("severity {} {}", alert.severity, f.describe()));
        }
        if !self.rules.is_empty() {
            match self.rules.iter().find(|g| g.matches(&alert.rule)) {
                Some(g) if g.is_exact() => why.because(|| format!("rule is {:?}", alert.rule)),
                Some(g) => why.because(|| format!("rule {:?} matches {:?}", alert.rule, g.as_str())),
                None => return Err(W::refuse(|| format!("rule {:?} matches none of the policy's rules", alert.rule))),
            }
        }
        let has = |t: &String| alert.tags.contains(t);
        if let Some(missing) = self.tags.all.iter().find(|t| !has(t)) {
            return Err(W::refuse(|| format!("tag {missing:?} is missing")));
        }
        if !self.tags.any.is_empty() && !self.tags.any.iter().any(has) {
            return Err(W::refuse(|| format!("none of the tags {:?} is present", self.tags.any)));
        }
        if let Some(t) = self.tags.none.iter().find(|t| has(t)) {
            return Err(W::refuse(|| format!("tag {t:?} excludes it")));
        }
        if !(self.tags.all.is_empty() && self.tags.any.is_empty() && self.tags.none.is_empty()) {
            why.because(|| format!("tags {:?} satisfy the tag conditions", alert.tags));
        }
        for (name, p) in &self.fields {
            let v = alert.fields.get(name);
            if !p.accepts(v) {
                return Err(W::refuse(|| match v {
                    Some(v) => format!("field {name} = {} fails its predicate", render(v)),
                    None => format!("field {name} is absent"),
                }));
            }
            why.because(|| format!("field {name} = {}", v.map(render).unwrap_or_else(|| "(absent)".into())));
        }
        self.resource.check::<W>(&alert.resource)?;
        if !(self.resource.include.is_empty() && self.resource.exclude.is_empty()) {
            why.because(|| "resource is in scope".into());
        }
        if let Some(c) = &self.when {
            match c.evaluate(alert) {
                Ok(true) => why.because(|| format!("when `{}` is true", c.source())),
                Ok(false) => return Err(W::refuse(|| format!("when `{}` is false", c.source()))),
                Err(e) => return Err(W::refuse(|| e)),
            }
        }
        Ok(())
    }

    fn sources_str(&self) -> Vec<&'static str> {
        self.sources.iter().map(|s| s.as_str()).collect()
    }
}

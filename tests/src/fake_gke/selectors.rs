//! List filters: `fieldSelector` (`field=value`, `field==value`, `field!=value`, comma-separated)
//! and `labelSelector` (equality, inequality, `in`, `notin`, existence, `!key`).

use serde_json::Value;

use super::routes::Resource;
use super::status::KubeError;

/// One requirement of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldRequirement {
    path: Vec<&'static str>,
    value: String,
    equal: bool,
}

/// A parsed field selector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector(Vec<FieldRequirement>);

/// The fields a resource can be selected by, as paths into the object.
fn field_path(resource: Resource, field: &str) -> Option<Vec<&'static str>> {
    let path: &[&'static str] = match (resource, field) {
        (_, "metadata.name") => &["metadata", "name"],
        (_, "metadata.namespace") if resource.namespaced() => &["metadata", "namespace"],
        (Resource::Pod, "spec.nodeName") => &["spec", "nodeName"],
        (Resource::Pod, "spec.restartPolicy") => &["spec", "restartPolicy"],
        (Resource::Pod, "spec.schedulerName") => &["spec", "schedulerName"],
        (Resource::Pod, "spec.serviceAccountName") => &["spec", "serviceAccountName"],
        (Resource::Pod, "status.phase") => &["status", "phase"],
        (Resource::Node, "spec.unschedulable") => &["spec", "unschedulable"],
        (Resource::Event, "involvedObject.kind") => &["involvedObject", "kind"],
        (Resource::Event, "involvedObject.name") => &["involvedObject", "name"],
        (Resource::Event, "involvedObject.namespace") => &["involvedObject", "namespace"],
        (Resource::Event, "involvedObject.uid") => &["involvedObject", "uid"],
        (Resource::Event, "reason") => &["reason"],
        (Resource::Event, "type") => &["type"],
        _ => return None,
    };
    Some(path.to_vec())
}

impl FieldSelector {
    /// Parses `selector` for `resource`: 400 for a malformed one or an unsupported field.
    pub fn parse(resource: Resource, selector: &str) -> Result<FieldSelector, KubeError> {
        let mut requirements = Vec::new();
        for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, v, true)
            } else {
                return Err(KubeError::bad_request(format!("invalid field selector: {term:?}: no operator")));
            };
            let field = field.trim();
            let path = field_path(resource, field)
                .ok_or_else(|| KubeError::bad_request(format!("field label not supported: {field}")))?;
            requirements.push(FieldRequirement { path, value: value.trim().to_owned(), equal });
        }
        Ok(FieldSelector(requirements))
    }

    /// Whether `object` satisfies every requirement (a missing field is the empty string, a
    /// boolean its `true`/`false`).
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|r| {
            let field = r.path.iter().try_fold(object, |at, key| at.get(key));
            let actual = match field {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Null) | None if r.path == ["spec", "unschedulable"] => "false".to_owned(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == r.value) == r.equal
        })
    }
}

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum LabelRequirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector(Vec<LabelRequirement>);

/// Splits at commas outside parentheses.
fn split_terms(selector: &str) -> Vec<&str> {
    let (mut terms, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    terms.into_iter().map(str::trim).filter(|t| !t.is_empty()).collect()
}

/// The values of `(a, b)`.
fn set_values(set: &str) -> Option<Vec<String>> {
    let inner = set.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect())
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

impl LabelSelector {
    /// Parses `selector`: 400 for a malformed one.
    pub fn parse(selector: &str) -> Result<LabelSelector, KubeError> {
        let invalid =
            |term: &str| KubeError::bad_request(format!("unable to parse requirement: invalid selector: {term:?}"));
        let mut requirements = Vec::new();
        for term in split_terms(selector) {
            let requirement = if let Some(key) = term.strip_prefix('!') {
                LabelRequirement::DoesNotExist(key.trim().to_owned())
            } else if let Some((key, value)) = term.split_once("!=") {
                LabelRequirement::NotIn(key.trim().to_owned(), vec![value.trim().to_owned()])
            } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
                LabelRequirement::In(key.trim().to_owned(), vec![value.trim().to_owned()])
            } else if let Some((key, set)) = term.split_once(" notin ") {
                LabelRequirement::NotIn(key.trim().to_owned(), set_values(set).ok_or_else(|| invalid(term))?)
            } else if let Some((key, set)) = term.split_once(" in ") {
                LabelRequirement::In(key.trim().to_owned(), set_values(set).ok_or_else(|| invalid(term))?)
            } else {
                LabelRequirement::Exists(term.to_owned())
            };
            let key = match &requirement {
                LabelRequirement::In(k, _)
                | LabelRequirement::NotIn(k, _)
                | LabelRequirement::Exists(k)
                | LabelRequirement::DoesNotExist(k) => k,
            };
            if !valid_key(key) {
                return Err(invalid(term));
            }
            requirements.push(requirement);
        }
        Ok(LabelSelector(requirements))
    }

    /// Whether `object`'s labels satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let label = |key: &str| object.pointer("/metadata/labels").and_then(|l| l.get(key)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelRequirement::In(key, values) => label(key).is_some_and(|v| values.iter().any(|w| w == v)),
            LabelRequirement::NotIn(key, values) => label(key).is_none_or(|v| values.iter().all(|w| w != v)),
            LabelRequirement::Exists(key) => label(key).is_some(),
            LabelRequirement::DoesNotExist(key) => label(key).is_none(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn selectors_filter_like_the_apiserver() {
        let pod = json!({"metadata": {"name": "a", "namespace": "ns", "labels": {"app": "web", "tier": "fe"}},
                         "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let field = |s: &str| FieldSelector::parse(Resource::Pod, s).expect("a valid selector").matches(&pod);
        assert!(field("spec.nodeName=n1"));
        assert!(field("spec.nodeName==n1,status.phase!=Failed"));
        assert!(!field("spec.nodeName=n2"));
        assert_eq!(FieldSelector::parse(Resource::Pod, "spec.foo=x").map_err(|e| e.code), Err(400));
        let label = |s: &str| LabelSelector::parse(s).expect("a valid selector").matches(&pod);
        assert!(label("app=web,tier in (fe, be)"));
        assert!(label("app,!quarantine,tier notin (be)"));
        assert!(!label("app!=web"));
        assert!(!label("tier in (be)"));
    }
}

//! Property tests of the policy matcher against an independent oracle.

use std::collections::BTreeMap;

use proptest::prelude::*;
use riposte_core::alert::{Alert, AlertStatus, Delivery, ResourceHints, Source};
use riposte_core::policy::PolicySet;
use riposte_core::severity::{ALL_SEVERITIES, Severity};
use serde_json::json;

const RULES: [&str; 4] = [
    "Terminal shell in container",
    "Drop and execute new binary in container",
    "Test rule",
    "io.k8s.core.v1.pods.exec.create",
];
const TAGS: [&str; 4] = ["container", "shell", "test", "mitre_execution"];
const SOURCES: [Source; 3] = [Source::Falco, Source::Monitoring, Source::Logging];
const OPS: [&str; 5] = [">=", ">", "==", "<=", "<"];

fn alert(source: Source, severity: Severity, rule: &str, tags: &[&str], ns: Option<&str>, uid: i64) -> Alert {
    Alert {
        source,
        delivery: Delivery::Webhook,
        severity,
        rule: rule.into(),
        summary: String::new(),
        time: jiff::Timestamp::UNIX_EPOCH,
        status: AlertStatus::Firing,
        fields: BTreeMap::from([("user.uid".to_string(), json!(uid))]),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        resource: ResourceHints { namespace: ns.map(|n| n.parse().expect("ns")), ..ResourceHints::default() },
        notes: vec![],
        raw: Default::default(),
    }
}

fn oracle_severity(op: &str, level: Severity, s: Severity) -> bool {
    match op {
        ">=" => s >= level,
        ">" => s > level,
        "==" => s == level,
        "<=" => s <= level,
        _ => s < level,
    }
}

fn subset<T: Copy>(items: &[T], mask: u8) -> Vec<T> {
    items.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, t)| *t).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A policy matches exactly when every criterion holds.
    #[test]
    fn matcher_agrees_with_oracle(
        source_mask in 0u8..8, op in 0usize..5, level in 0usize..8, rule_mask in 0u8..16, glob in any::<bool>(),
        all_mask in 0u8..16, none_mask in 0u8..16, uid_max in -1i64..3, excluded_ns in any::<bool>(),
        a_source in 0usize..3, a_sev in 0usize..8, a_rule in 0usize..4, a_tags in 0u8..16, a_ns in any::<bool>(), a_uid in -1i64..3,
    ) {
        let sources = subset(&SOURCES, source_mask);
        let rules: Vec<String> = subset(&RULES, rule_mask)
            .iter()
            .map(|r| if glob { format!("{}*", &r[..6]) } else { r.to_string() })
            .collect();
        let all = subset(&TAGS, all_mask);
        let none = subset(&TAGS, none_mask);
        let yaml = format!(
            "policies:\n  - name: p\n    match:\n      sources: {}\n      severity: \"{} {}\"\n      rules: {}\n      tags: {{all: {}, none: {}}}\n      fields: {{user.uid: {{lte: {uid_max}}}}}\n      resource: {{exclude_namespaces: {}}}\n",
            serde_json::to_string(&sources.iter().map(|s| s.as_str()).collect::<Vec<_>>()).unwrap_or_default(),
            OPS[op], ALL_SEVERITIES[level],
            serde_json::to_string(&rules).unwrap_or_default(),
            serde_json::to_string(&all).unwrap_or_default(),
            serde_json::to_string(&none).unwrap_or_default(),
            if excluded_ns { "[kube-system]" } else { "[]" },
        );
        let set = PolicySet::from_yaml(&yaml).map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
        let tags = subset(&TAGS, a_tags);
        let ns = a_ns.then_some("kube-system");
        let a = alert(SOURCES[a_source], ALL_SEVERITIES[a_sev], RULES[a_rule], &tags, ns, a_uid);

        let expected = (sources.is_empty() || sources.contains(&a.source))
            && oracle_severity(OPS[op], ALL_SEVERITIES[level], a.severity)
            && (rules.is_empty() || rules.iter().any(|r| if glob { a.rule.starts_with(r.trim_end_matches('*')) } else { *r == a.rule }))
            && all.iter().all(|t| tags.contains(t))
            && !none.iter().any(|t| tags.contains(t))
            && a_uid <= uid_max
            && !(excluded_ns && a_ns);
        let explained = set.policies[0].matcher.explain(&a);
        prop_assert_eq!(explained.is_ok(), expected, "{:?}\n{}", explained, yaml);
        // The verdict admission uses, made without the reasons, agrees with the explanation.
        prop_assert_eq!(set.policies[0].matcher.accepts(&a), expected);
        prop_assert_eq!(set.matches(&a).len(), usize::from(expected));
    }

    /// First match wins unless a policy continues; `matches` is always a prefix-ordered subset.
    #[test]
    fn first_match_wins_unless_continue(cont in prop::collection::vec(any::<bool>(), 1..5), a_sev in 0usize..8) {
        let mut yaml = String::from("policies:\n");
        for (i, c) in cont.iter().enumerate() {
            yaml.push_str(&format!("  - name: p{i}\n    continue: {c}\n    match: {{severity: \">= {}\"}}\n", ALL_SEVERITIES[i]));
        }
        let set = PolicySet::from_yaml(&yaml).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let a = alert(Source::Falco, ALL_SEVERITIES[a_sev], "r", &[], None, 0);
        let got: Vec<&str> = set.matches(&a).iter().map(|m| m.name.as_str()).collect();
        let mut expected = Vec::new();
        for (i, c) in cont.iter().enumerate() {
            if ALL_SEVERITIES[a_sev] >= ALL_SEVERITIES[i] {
                expected.push(format!("p{i}"));
                if !c { break; }
            }
        }
        prop_assert_eq!(got, expected);
    }
}

#[test]
fn cel_when_sees_fields_tags_and_resource() {
    let set = PolicySet::from_yaml(
        r#"
policies:
  - name: p
    match:
      when: 'fields["user.uid"] == 0 && "shell" in tags && resource.namespace == "kube-system" && severity_level >= 5'
"#,
    )
    .expect("valid");
    let yes = alert(Source::Falco, Severity::Critical, "r", &["shell"], Some("kube-system"), 0);
    let no = alert(Source::Falco, Severity::Critical, "r", &["shell"], Some("kube-system"), 1);
    assert!(set.policies[0].matcher.explain(&yes).is_ok());
    assert!(set.policies[0].matcher.explain(&no).is_err());
    // A missing key makes the policy not match, with the reason, instead of failing the intake.
    let missing = alert(Source::Falco, Severity::Critical, "r", &["shell"], None, 0);
    let err = set.policies[0].matcher.explain(&missing).expect_err("no namespace");
    assert!(err.contains("when"), "{err}");
}

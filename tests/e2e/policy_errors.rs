//! Invalid policies: each error is reported with its path and a message, all of them at once.

use riposte_core::policy::{PolicyError, PolicySet};

fn errors(yaml: &str) -> Vec<PolicyError> {
    match PolicySet::from_yaml(yaml) {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(e) => e.0,
    }
}

fn policy(body: &str) -> String {
    format!("version: 1\npolicies:\n  - name: p\n{}", body.lines().map(|l| format!("    {l}\n")).collect::<String>())
}

#[test]
fn table_of_invalid_policies() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            policy("match: {}\nactions: [drain_node]"),
            "policies[0].actions[0]",
            "drain_node is destructive and cannot run automatically; move it to on_approval",
        ),
        (policy("match: {}\nactions: [cordon_nodes]"), "policies[0].actions[0]", "unknown action `cordon_nodes`"),
        (
            policy("match: {}\nactions:\n  - quarantine_instance: {tags: x}"),
            "policies[0].actions[0].quarantine_instance.tags",
            "unknown field `tags`",
        ),
        (
            policy("match: {}\nactions:\n  - quarantine_instance: {tag: Bad Tag}"),
            "policies[0].actions[0].quarantine_instance.tag",
            "is not a valid Compute Engine name",
        ),
        (
            policy("match: {}\nactions:\n  - label_instance: {labels: {Owner: x}}"),
            "policies[0].actions[0].label_instance.labels.Owner",
            "not a valid Compute Engine label key",
        ),
        (
            policy("match: {}\nactions:\n  - label_pod: {labels: {ok: \"-bad\"}}"),
            "policies[0].actions[0].label_pod.labels.ok",
            "not a valid Kubernetes label value",
        ),
        (
            policy("match: {}\nactions:\n  - snapshot_disks: {project: Forensics_Vault}"),
            "policies[0].actions[0].snapshot_disks.project",
            "\"Forensics_Vault\" is not a Google Cloud project id",
        ),
        (
            policy("match: {}\nactions: [collect_evidence]"),
            "policies[0].actions[0].collect_evidence.bucket",
            "the bucket the evidence goes to is required",
        ),
        (
            policy("match: {}\nactions:\n  - collect_evidence: {bucket: goog-evidence, max_log_bytes: 10}"),
            "policies[0].actions[0].collect_evidence.bucket",
            "is not a Cloud Storage bucket name",
        ),
        (policy("match: {severity: \">= loud\"}"), "policies[0].match.severity", "unknown severity \"loud\""),
        (policy("match: {sources: [falcon]}"), "policies[0].match.sources[0]", "unknown variant `falcon`"),
        (policy("match: {when: 'rule =='}"), "policies[0].match.when", "invalid CEL expression"),
        (policy("match: {when: 'nope == 1'}"), "policies[0].match.when", "unknown variable(s) nope"),
        (
            policy("match: {fields: {proc.name: {equals: x}}}"),
            "policies[0].match.fields.\"proc.name\".equals",
            "unknown key `equals`",
        ),
        (policy("match: {fields: {proc.name: {}}}"), "policies[0].match.fields.\"proc.name\"", "needs at least one of"),
        (
            policy("match: {resource: {namespace: [a]}}"),
            "policies[0].match.resource.namespace",
            "did you mean `namespaces`?",
        ),
        (policy("match: {}\ngroup_by: [resource.host]"), "policies[0].group_by[0]", "unknown resource hint \"host\""),
        (policy("match: {}\ndedup_window: 10 minutes"), "policies[0].dedup_window", "is not a duration"),
        (policy("match: {}\ndedup_window: 30d"), "policies[0].dedup_window", "between 1s and 7d"),
        (policy("match: {}\non_aproval: [drain_node]"), "policies[0].on_aproval", "did you mean `on_approval`?"),
        (policy("match: {}\napproval: {required: 1}"), "policies[0].approval", "nothing to approve"),
        (
            policy("match: {}\non_approval: [drain_node]\napproval: {required: 2, approvers: [a@x.io]}"),
            "policies[0].approval.required",
            "2 approvals required but only 1 approver(s) listed",
        ),
        (
            policy("match: {}\non_approval: [drain_node]\napproval: {expires_in: 5d}"),
            "policies[0].approval.expires_in",
            "between 1m and 24h",
        ),
        (
            policy("match: {}\non_approval: [drain_node]\napproval: {approvers: [alice]}"),
            "policies[0].approval.approvers[0]",
            "is not an email address",
        ),
        (
            policy("match: {}\non_approval: [drain_node]\napproval: {required_for: {delete_instance: 2}}"),
            "policies[0].approval.required_for.delete_instance",
            "not one of this policy's on_approval actions",
        ),
        (policy("match: {}\nnotify: [slack]"), "policies[0].notify[0]", "unknown notifier \"slack\""),
        (policy("actions: [cordon_node]"), "policies[0].match", "`match` is required"),
        (
            policy("match: {}\nactions: [cordon_node, cordon_node]"),
            "policies[0].actions[1]",
            "cordon_node is listed twice",
        ),
        (policy("match: {}\nlimits: {nodes: {max: 0, per: 1h}}"), "policies[0].limits.nodes.max", "between 1 and 1000"),
        (policy("match: {}\nlimits: {nodes: {max: 3, per: 10s}}"), "policies[0].limits.nodes.per", "between 1m and 7d"),
        (policy("match: {}\nlimits: {nodes: {max: 3}}"), "policies[0].limits.nodes.per", "`per` is required"),
        (
            policy("match: {}\nlimits: {node_pool: {percent: 150, per: 1h}}"),
            "policies[0].limits.node_pool.percent",
            "between 1 and 100",
        ),
        (
            policy("match: {}\nlimits: {node_pool: {max: 3, per: 1h}}"),
            "policies[0].limits.node_pool.max",
            "unknown key `max`; expected one of: percent, per",
        ),
        (policy("match: {}\nlimits: {node: {max: 3, per: 1h}}"), "policies[0].limits.node", "did you mean `nodes`?"),
        (
            "limits: {pods: {max: 3, per: 1h, within: pool}}\npolicies: [{name: a, match: {}}]".to_string(),
            "limits.pods.within",
            "unknown key `within`",
        ),
        ("version: 2\npolicies: []".to_string(), "version", "unsupported version 2"),
        ("policies: []".to_string(), "policies", "no policies"),
        ("polices: []".to_string(), "polices", "did you mean `policies`?"),
        ("version: 1".to_string(), "policies", "`policies` is required"),
        ("".to_string(), "", "the policy file is empty"),
        ("policies: [\n".to_string(), "", "not valid YAML"),
        (
            "notifiers: {chat: {type: pigeon}}\npolicies: [{name: a, match: {}}]".to_string(),
            "notifiers.chat.type",
            "unknown variant `pigeon`",
        ),
        (
            "defaults: {project: NOPE}\npolicies: [{name: a, match: {}}]".to_string(),
            "defaults.project",
            "is not a valid project id",
        ),
        (
            "policies: [{name: a, match: {}}, {name: a, match: {}}]".to_string(),
            "policies[1].name",
            "duplicate policy name \"a\"",
        ),
    ];
    let mut failures = Vec::new();
    for (yaml, path, message) in cases {
        let errs = errors(&yaml);
        if !errs.iter().any(|e| e.path == path && e.message.contains(message)) {
            failures.push(format!("for\n{yaml}\nexpected {path}: …{message}…\ngot {errs:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn several_errors_are_reported_at_once() {
    let yaml = r#"
version: 1
polices: x
policies:
  - name: first
    match: {severity: loud, sources: [falcon]}
    actions: [delete_pod, cordon_nodes]
    dedup_window: forever
  - name: second
    match: {when: "rule =="}
    on_approval: [drain_node]
    approval: {required: 0}
    notify: [pager]
"#;
    let errs = errors(yaml);
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    for expected in [
        "polices",
        "policies[0].match.severity",
        "policies[0].match.sources[0]",
        "policies[0].actions[0]",
        "policies[0].actions[1]",
        "policies[0].dedup_window",
        "policies[1].match.when",
        "policies[1].approval.required",
        "policies[1].notify[0]",
    ] {
        assert!(paths.contains(&expected), "missing {expected} in {paths:#?}");
    }
    assert!(errs.len() >= 9);
    let count = errs.len();
    let text = riposte_core::policy::PolicyErrors(errs.clone()).to_string();
    assert!(text.starts_with(&format!("{count} error(s) in the policy file:")));
    assert_eq!(text.lines().count(), count + 1, "one line per error");
}

#[test]
fn the_example_policy_is_valid_and_has_the_runbook() {
    let set = crate::helpers::example_policies();
    let names: Vec<&str> = set.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["crypto-mining-containment", "terminal-shell-in-container", "human-exec-into-pod", "node-cpu-pegged"]
    );
    let crypto = &set.policies[0];
    let auto: Vec<&str> = crypto.actions.iter().map(|a| a.name()).collect();
    assert_eq!(
        auto,
        ["snapshot_disks", "label_instance", "quarantine_instance", "label_pod", "isolate_pod", "cordon_node"]
    );
    assert!(crypto.on_approval.iter().any(|a| a.name() == "drain_node"));
}

#[test]
fn delete_workload_never_plans_in_a_protected_namespace_unless_allowed() {
    use riposte_core::alert::{Alert, AlertStatus, Delivery, ResourceHints, Source};
    use riposte_core::incident::StepStatus;
    let yaml = r#"
defaults: {project: shop-prod, location: europe-west1, cluster: prod-eu, protected_namespaces: [payments]}
policies:
  - name: p
    match: {}
    on_approval:
      - delete_workload: {allow_namespaces: [payments]}
  - name: q
    match: {}
    on_approval: [delete_workload]
"#;
    let set = PolicySet::from_yaml(yaml).expect("valid");
    let alert_in = |ns: &str| {
        let mut a = Alert {
            source: Source::Falco,
            delivery: Delivery::Webhook,
            severity: riposte_core::severity::Severity::Critical,
            rule: "r".into(),
            summary: String::new(),
            time: jiff::Timestamp::UNIX_EPOCH,
            status: AlertStatus::Firing,
            fields: Default::default(),
            tags: vec![],
            resource: ResourceHints {
                namespace: ns.parse().ok(),
                pod: "api-1".parse().ok(),
                ..ResourceHints::default()
            },
            notes: vec![],
            raw: Default::default(),
        };
        set.apply_defaults(std::slice::from_mut(&mut a));
        a
    };
    let plan = |policy: usize, ns: &str| {
        riposte_core::plan::plan_incident(&set.policies[policy], &set.defaults, &alert_in(ns), jiff::Timestamp::now())
            .steps[0]
            .status
            .clone()
    };
    assert!(
        matches!(plan(1, "kube-system"), StepStatus::Skipped { reason } if reason.contains("kube-system is protected"))
    );
    assert!(matches!(plan(1, "payments"), StepStatus::Skipped { reason } if reason.contains("allow_namespaces")));
    assert_eq!(plan(0, "payments"), StepStatus::AwaitingApproval, "the policy named it explicitly");
    assert!(matches!(plan(0, "kube-system"), StepStatus::Skipped { .. }), "kube-system stays protected");
    assert_eq!(plan(1, "shop"), StepStatus::AwaitingApproval);
}

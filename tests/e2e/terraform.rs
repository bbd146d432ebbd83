//! Least privilege, checked against the deployment itself: the custom roles in
//! `terraform/modules/riposte/iam.tf` grant exactly the permissions the code declares for the
//! steps each service runs — nothing missing (a step would fail with 403 in production), nothing
//! extra (a compromised service could do more than riposte needs).

use std::collections::BTreeSet;
use std::path::Path;

use riposte_core::action::{ACTION_NAMES, Action, ActionClass};
use riposte_core::locate::LOCATE_PERMISSIONS;

/// Every action, with default parameters.
fn actions() -> Vec<Action> {
    ACTION_NAMES.iter().map(|name| serde_json::from_value(serde_json::json!({ *name: {} })).expect("action")).collect()
}

/// The literal string list assigned to `name` in a terraform file (`name = [ "a", "b", ]`).
fn hcl_list(text: &str, name: &str) -> BTreeSet<String> {
    let start = text.find(&format!("{name} = [")).unwrap_or_else(|| panic!("{name} is not in iam.tf"));
    let body = &text[start..];
    let body = &body[body.find('[').expect("[") + 1..body.find(']').expect("]")];
    body.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim().trim_end_matches(','))
        .filter(|l| !l.is_empty())
        .map(|l| l.trim_matches('"').to_string())
        .collect()
}

fn set(items: impl IntoIterator<Item = &'static str>) -> BTreeSet<String> {
    items.into_iter().map(String::from).collect()
}

fn module_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform/modules/riposte").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn iam_tf() -> String {
    module_file("iam.tf")
}

fn compare(role: &str, granted: &BTreeSet<String>, needed: &BTreeSet<String>) {
    let missing: Vec<_> = needed.difference(granted).collect();
    let extra: Vec<_> = granted.difference(needed).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{role}: missing {missing:?}, extra {extra:?}");
}

#[test]
fn each_services_custom_role_grants_exactly_what_its_steps_declare() {
    let tf = iam_tf();
    let all = actions();
    // The ingest service runs the automatic steps (safe actions only) and locates pods.
    let ingest: BTreeSet<String> = all
        .iter()
        .filter(|a| a.class() == ActionClass::Safe)
        .flat_map(|a| set(a.permissions().iter().copied()))
        .chain(set(LOCATE_PERMISSIONS))
        .collect();
    compare("ingest", &hcl_list(&tf, "ingest_action_permissions"), &ingest);
    // The approve service runs what was approved: destructive actions, and safe ones a policy
    // put under on_approval.
    let approve: BTreeSet<String> = all.iter().flat_map(|a| set(a.permissions().iter().copied())).collect();
    compare("approve", &hcl_list(&tf, "approve_action_permissions"), &approve);
    // People running `riposte incident release`.
    let release: BTreeSet<String> = all.iter().flat_map(|a| set(a.release_permissions().iter().copied())).collect();
    compare("responder", &hcl_list(&tf, "release_permissions"), &release);
    // The forensics project, where snapshot_disks: {project: …} keeps the snapshots.
    compare(
        "forensics",
        &hcl_list(&tf, "forensics_project_permissions"),
        &set(riposte_core::action::FORENSICS_PROJECT_PERMISSIONS.iter().copied()),
    );
    // The evidence bucket, where collect_evidence writes.
    compare(
        "evidence",
        &hcl_list(&module_file("evidence.tf"), "evidence_bucket_permissions"),
        &set(riposte_core::action::EVIDENCE_BUCKET_PERMISSIONS.iter().copied()),
    );
    // No destructive permission on the ingest service.
    for destructive in all.iter().filter(|a| a.class() == ActionClass::Destructive) {
        let only_destructive: Vec<_> = destructive.permissions().iter().filter(|p| !ingest.contains(**p)).collect();
        assert!(!only_destructive.is_empty(), "{} would be possible from ingest", destructive.name());
    }
}

#[test]
fn the_evidence_bucket_keeps_objects_and_grants_only_its_list() {
    let tf = module_file("evidence.tf");
    assert!(tf.contains("permissions = local.evidence_bucket_permissions"));
    assert!(tf.contains("retention_period = var.evidence_retention_days * 86400"), "a retention policy");
    assert!(tf.contains("public_access_prevention    = \"enforced\""));
    assert!(tf.contains("force_destroy               = false"));
    // Granted on the bucket, never on the project.
    assert!(tf.contains("resource \"google_storage_bucket_iam_member\" \"evidence_writers\""));
    assert!(!tf.contains("google_project_iam_member"), "evidence permissions on the project");
}

#[test]
fn the_roles_are_bound_to_the_lists_the_test_reads() {
    let tf = iam_tf();
    for list in [
        "ingest_action_permissions",
        "approve_action_permissions",
        "release_permissions",
        "forensics_project_permissions",
    ] {
        assert!(tf.contains(&format!("permissions = local.{list}")), "a custom role must use local.{list}");
    }
}

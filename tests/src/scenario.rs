//! The containment scenario shared by the Compute tests, the kill -9 tests and the containment
//! benchmark: the GKE node the Falco fixture names, its VM, and the runbook's automatic Compute
//! steps as a policy.

use crate::fake_compute::InstanceSpec;

/// The project the fixtures name.
pub const PROJECT: &str = "shop-prod";
/// The zone of the node's VM (the Falco fixture gives only the region).
pub const ZONE: &str = "europe-west1-b";
/// The node the Falco fixture names, which is its VM's name on GKE.
pub const NODE: &str = "gke-prod-eu-default-pool-5c1d2e3f-k9zt";

/// A policy for the Falco fixture with the runbook's four automatic Compute steps (snapshot,
/// label, quarantine, forensic SSH) and `on_approval` after one approval (none when empty).
pub fn containment_policy(on_approval: &[&str]) -> String {
    let mut yaml = String::from(
        "version: 1
notifiers: {console: {type: console}}
policies:
  - name: vm-containment
    match: {sources: [falco], severity: \">= critical\"}
    actions:
      - snapshot_disks
      - label_instance: {labels: {riposte-state: quarantined}}
      - quarantine_instance
      - allow_forensic_ssh
",
    );
    if !on_approval.is_empty() {
        yaml.push_str(&format!(
            "    on_approval: [{}]\n    approval: {{expires_in: 30m, required: 1}}\n",
            on_approval.join(", ")
        ));
    }
    yaml
}

/// A VM named `name` in [`PROJECT`]/[`ZONE`] with three persistent disks (boot, data, scratch);
/// otherwise as [`InstanceSpec::new`].
pub fn three_disk_vm(name: &str, id: u64) -> InstanceSpec {
    let mut spec = InstanceSpec::new(PROJECT, ZONE, name, id);
    spec.disks = vec![name.to_string(), format!("{name}-data"), format!("{name}-scratch")];
    spec
}

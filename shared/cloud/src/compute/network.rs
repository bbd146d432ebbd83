//! `remove_external_ip`: delete every one-to-one NAT access config, one interface at a time (the
//! API refuses concurrent changes to one interface). The report names every IP removed.

use google_cloud_compute_v1::model::access_config::Type as AccessType;
use riposte_core::action::RemoveExternalIp;
use riposte_core::executor::ExecError;
use riposte_core::names::is_gce_resource_name;

use super::call::with_retries;
use super::instance::Vm;
use super::operation::Scope;
use super::{ComputeExecutor, Journal, StepContext};

/// The error, saying which IPs were already removed before it (the step's report is only kept on
/// success, and the error is what the incident records).
fn with_removed(e: ExecError, removed: &[String]) -> ExecError {
    if removed.is_empty() {
        return e;
    }
    let done = format!("already removed: {}; then ", removed.join(", "));
    match e {
        ExecError::Retryable(m) => ExecError::Retryable(done + &m),
        ExecError::Permanent(m) => ExecError::Permanent(done + &m),
        ExecError::Skip(m) => ExecError::Skip(done + &m),
        ExecError::Call { mut failure, retryable } => {
            failure.what = done + &failure.what;
            ExecError::Call { failure, retryable }
        }
    }
}

impl ComputeExecutor {
    /// Removes the VM's external IPs.
    pub(crate) async fn remove_external_ips(
        &self,
        vm: &Vm,
        ctx: &StepContext<'_>,
        journal: &mut Journal,
    ) -> Result<String, ExecError> {
        let mut removed = Vec::new();
        for nic in &vm.instance.network_interfaces {
            let nic_name = nic.name.as_deref().unwrap_or("nic0");
            for config in
                nic.access_configs.iter().filter(|c| c.r#type.as_ref().is_none_or(|t| *t == AccessType::OneToOneNat))
            {
                let Some(config_name) = config.name.as_deref() else { continue };
                // Both go into the query string; refuse anything that is not a plain name.
                if !is_gce_resource_name(nic_name) || config_name.chars().any(|c| c.is_control()) {
                    return Err(ExecError::Permanent(format!(
                        "unexpected interface or access config name {nic_name:?}/{config_name:?}"
                    )));
                }
                let ip = config.nat_ip.as_deref().unwrap_or("(ephemeral, unassigned)");
                let what = format!("removing {ip} ({nic_name}/{config_name}) from {}", vm.path());
                // Logged before the call: an ephemeral IP is gone for good once released, and a
                // crash before the step is recorded must not lose which one it was.
                tracing::info!(incident = ctx.incident_id, vm = %vm.path(), ip, interface = nic_name, access_config = config_name, "removing external IP");
                let rid = RemoveExternalIp::request_id(ctx.key, nic_name, config_name);
                let op = with_retries(&self.settings.retry, || {
                    self.clients
                        .instances
                        .delete_access_config()
                        .set_project(&vm.project)
                        .set_zone(&vm.zone)
                        .set_instance(&vm.name)
                        .set_network_interface(nic_name)
                        .set_access_config(config_name)
                        .set_request_id(&rid)
                        .send()
                })
                .await
                .map_err(|e| with_removed(e.into_exec(&what), &removed))?;
                let url = self.url(&format!(
                    "{}/deleteAccessConfig?accessConfig={config_name}&networkInterface={nic_name}&requestId={rid}",
                    vm.path()
                ));
                journal.sent("POST", url, None::<&()>, Some(format!("removes external IP {ip}")));
                self.wait(&vm.project, Scope::Zone(&vm.zone), op, &what)
                    .await
                    .map_err(|e| with_removed(e, &removed))?
                    .map_err(|f| with_removed(f.into_exec(&what), &removed))?;
                removed.push(format!("{ip} ({nic_name}/{config_name})"));
            }
        }
        // External IPv6 ranges are not access configs riposte can delete: changing the interface's
        // stack type is a different, disruptive call. Say so instead of claiming the VM is offline.
        let v6: Vec<String> = vm
            .instance
            .network_interfaces
            .iter()
            .flat_map(|nic| {
                nic.ipv_6_access_configs.iter().filter_map(move |c| {
                    c.external_ipv_6.as_deref().map(|ip| format!("{ip} ({})", nic.name.as_deref().unwrap_or("nic0")))
                })
            })
            .collect();
        if !v6.is_empty() {
            let done = if removed.is_empty() { String::new() } else { format!("removed {}; ", removed.join(", ")) };
            return Err(ExecError::Permanent(format!(
                "{done}{} still has external IPv6 {}: riposte does not remove IPv6 access; the quarantine rules \
                 deny it, or run `gcloud compute instances network-interfaces update {} --zone {} --stack-type IPV4_ONLY`",
                vm.path(),
                v6.join(", "),
                vm.name,
                vm.zone
            )));
        }
        Ok(if removed.is_empty() {
            format!("{} has no external IP", vm.path())
        } else {
            format!("removed external IP(s) of {}: {}", vm.path(), removed.join(", "))
        })
    }
}

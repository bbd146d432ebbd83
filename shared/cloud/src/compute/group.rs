//! Managed instance groups: a MIG would recreate or autoheal a VM riposte contains or deletes, so
//! `abandon_instance` takes the VM out of its group and `delete_instance` deletes through the group
//! (lowering its target size) when there is one. The group comes from the VM's `created-by`
//! metadata, which Compute sets on every VM a MIG creates.

use google_cloud_compute_v1::model::{
    InstanceGroupManagersAbandonInstancesRequest, InstanceGroupManagersDeleteInstancesRequest,
};
use riposte_core::executor::ExecError;
use riposte_core::names::{Zone, is_gce_resource_name};
use riposte_core::requests::request_id;

use super::call::with_retries;
use super::instance::Vm;
use super::operation::Scope;
use super::{ComputeExecutor, Journal, StepContext};

/// A zonal managed instance group.
struct Group {
    zone: String,
    name: String,
}

/// The VM's managed instance group, from `created-by`; `Ok(None)` when it has none.
fn group_of(vm: &Vm) -> Result<Option<Group>, ExecError> {
    let metadata = vm.instance.metadata.as_ref();
    let created_by = metadata
        .and_then(|m| m.items.iter().find(|i| i.key.as_deref() == Some("created-by")))
        .and_then(|i| i.value.as_deref());
    let Some(created_by) = created_by else { return Ok(None) };
    // projects/NUMBER/zones/ZONE/instanceGroupManagers/NAME
    let parts: Vec<&str> = created_by.split('/').collect();
    match parts.as_slice() {
        [.., "zones", zone, "instanceGroupManagers", name] if is_gce_resource_name(name) => {
            let zone =
                zone.parse::<Zone>().map_err(|e| ExecError::Permanent(format!("created-by {created_by:?}: {e}")))?;
            Ok(Some(Group { zone: zone.to_string(), name: name.to_string() }))
        }
        [.., "regions", _, "instanceGroupManagers", _] => Err(ExecError::Permanent(format!(
            "{} belongs to the regional managed instance group {created_by}; riposte handles zonal groups only \
             (GKE node pools use zonal groups)",
            vm.path()
        ))),
        _ => Ok(None),
    }
}

impl ComputeExecutor {
    /// `abandon_instance`.
    pub(crate) async fn abandon(
        &self,
        vm: &Vm,
        ctx: &StepContext<'_>,
        journal: &mut Journal,
    ) -> Result<String, ExecError> {
        let Some(group) = group_of(vm)? else {
            return Err(ExecError::Skip(format!(
                "{} is not in a managed instance group: nothing to abandon",
                vm.path()
            )));
        };
        let body = InstanceGroupManagersAbandonInstancesRequest::new().set_instances([self.member(vm)]);
        let rid = request_id(ctx.key, "abandon");
        let what = format!("abandoning {} from group {}", vm.path(), group.name);
        let op = with_retries(&self.settings.retry, || {
            self.clients
                .groups
                .abandon_instances()
                .set_project(&vm.project)
                .set_zone(&group.zone)
                .set_instance_group_manager(&group.name)
                .set_request_id(&rid)
                .set_body(body.clone())
                .send()
        })
        .await
        .map_err(|e| e.into_exec(&what))?;
        journal.sent("POST", self.group_url(vm, &group, "abandonInstances", &rid), Some(&body), None);
        self.wait(&vm.project, Scope::Zone(&group.zone), op, &what).await?.map_err(|f| f.into_exec(&what))?;
        Ok(format!(
            "abandoned {} from managed instance group {}; the VM keeps running, contained",
            vm.path(),
            group.name
        ))
    }

    /// `delete_instance`: through the group when managed, directly otherwise.
    pub(crate) async fn delete(
        &self,
        vm: &Vm,
        ctx: &StepContext<'_>,
        journal: &mut Journal,
    ) -> Result<String, ExecError> {
        let what = format!("deleting {}", vm.path());
        let (op, zone, how) = match group_of(vm)? {
            Some(group) => {
                let body = InstanceGroupManagersDeleteInstancesRequest::new().set_instances([self.member(vm)]);
                let rid = request_id(ctx.key, "delete-through-mig");
                let op = with_retries(&self.settings.retry, || {
                    self.clients
                        .groups
                        .delete_instances()
                        .set_project(&vm.project)
                        .set_zone(&group.zone)
                        .set_instance_group_manager(&group.name)
                        .set_request_id(&rid)
                        .set_body(body.clone())
                        .send()
                })
                .await
                .map_err(|e| e.into_exec(&what))?;
                journal.sent("POST", self.group_url(vm, &group, "deleteInstances", &rid), Some(&body), None);
                (op, group.zone.clone(), format!("through managed instance group {}", group.name))
            }
            None => {
                let rid = request_id(ctx.key, "delete");
                let op = with_retries(&self.settings.retry, || {
                    self.clients
                        .instances
                        .delete()
                        .set_project(&vm.project)
                        .set_zone(&vm.zone)
                        .set_instance(&vm.name)
                        .set_request_id(&rid)
                        .send()
                })
                .await
                .map_err(|e| e.into_exec(&what))?;
                journal.sent("DELETE", self.url(&format!("{}?requestId={rid}", vm.path())), None::<&()>, None);
                (op, vm.zone.clone(), "directly (not in a managed instance group)".to_string())
            }
        };
        self.wait(&vm.project, Scope::Zone(&zone), op, &what).await?.map_err(|f| f.into_exec(&what))?;
        Ok(format!("deleted {} {how}", vm.path()))
    }

    /// The VM as a group member (`zones/z/instances/n`).
    fn member(&self, vm: &Vm) -> String {
        format!("zones/{}/instances/{}", vm.zone, vm.name)
    }

    fn group_url(&self, vm: &Vm, group: &Group, method: &str, rid: &str) -> String {
        self.url(&format!(
            "projects/{}/zones/{}/instanceGroupManagers/{}/{method}?requestId={rid}",
            vm.project, group.zone, group.name
        ))
    }
}

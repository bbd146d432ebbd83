//! Managed instance groups: a MIG would recreate or autoheal a VM riposte contains or deletes, so
//! `abandon_instance` takes the VM out of its group and `delete_instance` deletes through the group
//! (lowering its target size) when the VM is a member. The group comes from the VM's `created-by`
//! metadata, which Compute sets on every VM a MIG creates and does not remove on abandon, so
//! membership is confirmed with `listManagedInstances` before acting.

use std::time::Instant;

use google_cloud_compute_v1::model::{
    InstanceGroupManagersAbandonInstancesRequest, InstanceGroupManagersDeleteInstancesRequest,
};
use riposte_core::action::{AbandonInstance, DeleteInstance};
use riposte_core::executor::ExecError;
use riposte_core::names::{Zone, is_gce_resource_name};
use riposte_core::requests::group_member;

use super::call::with_retries;
use super::instance::{Vm, last_segment};
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
    /// Whether `vm` is a member of `group` now. `Ok(None)`: the group no longer exists.
    async fn membership(&self, vm: &Vm, group: &Group) -> Result<Option<bool>, ExecError> {
        let what = format!("listing the members of group {}", group.name);
        let mut page_token = String::new();
        loop {
            let page = with_retries(&self.settings.retry, || {
                self.clients
                    .groups
                    .list_managed_instances()
                    .set_project(&vm.project)
                    .set_zone(&group.zone)
                    .set_instance_group_manager(&group.name)
                    .set_page_token(page_token.clone())
                    .send()
            })
            .await;
            let page = match page {
                Ok(p) => p,
                Err(e) if e.not_found() => return Ok(None),
                Err(e) => return Err(e.into_exec(&what)),
            };
            let member = page
                .managed_instances
                .iter()
                .filter_map(|m| m.instance.as_deref())
                .any(|url| last_segment(url) == vm.name && url.contains(&format!("/zones/{}/instances/", vm.zone)));
            if member {
                return Ok(Some(true));
            }
            match page.next_page_token {
                // A token repeated would page forever: stop at it.
                Some(t) if !t.is_empty() && t != page_token => page_token = t,
                _ => return Ok(Some(false)),
            }
        }
    }

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
        match self.membership(vm, &group).await? {
            None => {
                return Err(ExecError::Skip(format!(
                    "the managed instance group {} of {} no longer exists: nothing to abandon",
                    group.name,
                    vm.path()
                )));
            }
            Some(false) => {
                return Ok(format!("{} is no longer a member of group {} (abandoned earlier)", vm.path(), group.name));
            }
            Some(true) => {}
        }
        let body =
            InstanceGroupManagersAbandonInstancesRequest::new().set_instances([group_member(&vm.zone, &vm.name)]);
        let rid = AbandonInstance::request_id(ctx.key);
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

    /// `delete_instance`: through the group when the VM is a member, directly otherwise.
    pub(crate) async fn delete(
        &self,
        vm: &Vm,
        ctx: &StepContext<'_>,
        journal: &mut Journal,
    ) -> Result<String, ExecError> {
        let what = format!("deleting {}", vm.path());
        let group = match group_of(vm)? {
            Some(group) if self.membership(vm, &group).await? == Some(true) => Some(group),
            _ => None,
        };
        let Some(group) = group else {
            let rid = DeleteInstance::direct_request_id(ctx.key);
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
            self.wait(&vm.project, Scope::Zone(&vm.zone), op, &what).await?.map_err(|f| f.into_exec(&what))?;
            return Ok(format!("deleted {} directly (not a member of a managed instance group)", vm.path()));
        };
        let body = InstanceGroupManagersDeleteInstancesRequest::new().set_instances([group_member(&vm.zone, &vm.name)]);
        let rid = DeleteInstance::through_group_request_id(ctx.key);
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
        self.wait(&vm.project, Scope::Zone(&group.zone), op, &what).await?.map_err(|f| f.into_exec(&what))?;
        // The group's operation is done when the deletion is scheduled: wait for the VM to go.
        self.until_gone(vm, &what).await?;
        Ok(format!("deleted {} through managed instance group {}", vm.path(), group.name))
    }

    /// Reads the VM until it is gone (404), within the operation deadline.
    async fn until_gone(&self, vm: &Vm, what: &str) -> Result<(), ExecError> {
        let start = Instant::now();
        let mut attempt = 0;
        loop {
            match self.get_instance(&vm.project, &vm.zone, &vm.name).await {
                Err(e) if e.not_found() => return Ok(()),
                Err(e) => return Err(e.into_exec(what)),
                Ok(_) if start.elapsed() > self.settings.operation_deadline => {
                    return Err(ExecError::Retryable(format!(
                        "{what}: the group scheduled the deletion, the VM still exists after {} s",
                        self.settings.operation_deadline.as_secs()
                    )));
                }
                Ok(_) => {
                    tokio::time::sleep(self.settings.retry.backoff.delay(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    fn group_url(&self, vm: &Vm, group: &Group, method: &str, rid: &str) -> String {
        self.url(&format!(
            "projects/{}/zones/{}/instanceGroupManagers/{}/{method}?requestId={rid}",
            vm.project, group.zone, group.name
        ))
    }
}

//! Finding the VM a step acts on: by name or id, in its zone or (when the alert gave none) through
//! the aggregated list. Names read back from the API are validated before they go into a path.

use google_cloud_compute_v1::model::Instance;
use riposte_core::executor::ExecError;
use riposte_core::names::{InstanceName, Zone};
use riposte_core::target::Target;

use super::ComputeExecutor;
use super::call::{ApiError, with_retries};

/// A resolved VM and what was read of it.
pub(crate) struct Vm {
    /// Project.
    pub project: String,
    /// Zone.
    pub zone: String,
    /// Instance name.
    pub name: String,
    /// The instance as last read.
    pub instance: Instance,
}

impl Vm {
    /// `projects/p/zones/z/instances/n`, for messages and MIG requests.
    pub fn path(&self) -> String {
        format!("projects/{}/zones/{}/instances/{}", self.project, self.zone, self.name)
    }
}

/// The last segment of a resource URL (`…/zones/europe-west1-b` → `europe-west1-b`).
pub(crate) fn last_segment(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

impl ComputeExecutor {
    /// The full URL of `path` (`projects/…`) under the API root, for the journal.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/compute/v1/{path}", self.settings.endpoint.trim_end_matches('/'))
    }

    /// Reads the instance `name_or_id` in `project`/`zone`.
    pub(crate) async fn get_instance(&self, project: &str, zone: &str, name_or_id: &str) -> Result<Instance, ApiError> {
        with_retries(&self.settings.retry, || {
            self.clients.instances.get().set_project(project).set_zone(zone).set_instance(name_or_id).send()
        })
        .await
    }

    /// Reads `vm` again (after a stale fingerprint).
    pub(crate) async fn reread(&self, vm: &Vm, what: &str) -> Result<Instance, ExecError> {
        self.get_instance(&vm.project, &vm.zone, &vm.name).await.map_err(|e| e.into_exec(what))
    }

    /// Resolves an instance target. A VM that no longer exists skips the step with the reason.
    pub(crate) async fn resolve(&self, target: &Target) -> Result<Vm, ExecError> {
        let Target::Instance { project, zone, name, id } = target else {
            return Err(ExecError::Permanent(format!("{} is not a VM", target.describe())));
        };
        let ident = match (name, id) {
            (Some(n), _) => n.to_string(),
            (None, Some(i)) => i.to_string(),
            (None, None) => return Err(ExecError::Skip("the target names no VM".into())),
        };
        let (zone, instance) = match zone {
            Some(zone) => match self.get_instance(project.as_str(), zone.as_str(), &ident).await {
                Ok(i) => (zone.to_string(), i),
                Err(e) if e.not_found() => {
                    return Err(ExecError::Skip(format!(
                        "VM {ident} not found in {project}/{zone}: it no longer exists (or the alert names the wrong zone)"
                    )));
                }
                Err(e) => return Err(e.into_exec(&format!("reading VM {ident}"))),
            },
            None => self.find_instance(project.as_str(), name.is_some(), &ident).await?,
        };
        // Named and numbered by the alert: a VM of that name with another id is a new VM (a MIG or
        // GKE auto-repair recreated it); acting on it would contain or delete an innocent machine.
        if let (Some(_), Some(want)) = (name, id)
            && instance.id.map(|i| i.to_string()).as_deref() != Some(want.as_str())
        {
            return Err(ExecError::Skip(format!(
                "VM {ident} was recreated since the alert (id {}, the alert named id {want}): not acting on the new VM",
                instance.id.map_or_else(|| "unknown".into(), |i| i.to_string())
            )));
        }
        let found = instance.name.as_deref().unwrap_or_default();
        let name = found
            .parse::<InstanceName>()
            .map_err(|e| ExecError::Permanent(format!("Compute returned an invalid instance name {found:?}: {e}")))?;
        Ok(Vm { project: project.to_string(), zone, name: name.to_string(), instance })
    }

    /// Finds a VM by name or id across all zones of `project`.
    async fn find_instance(&self, project: &str, by_name: bool, ident: &str) -> Result<(String, Instance), ExecError> {
        // `ident` is a validated instance name or numeric id, so it cannot break out of the filter.
        let filter = if by_name { format!("name = \"{ident}\"") } else { format!("id = {ident}") };
        let what = format!("looking up VM {ident} in {project}");
        let mut found = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = with_retries(&self.settings.retry, || {
                self.clients
                    .instances
                    .aggregated_list()
                    .set_project(project)
                    .set_filter(filter.clone())
                    .set_page_token(page_token.clone())
                    .send()
            })
            .await
            .map_err(|e| e.into_exec(&what))?;
            for scoped in page.items.into_values() {
                found.extend(scoped.instances);
            }
            match page.next_page_token {
                // A token repeated would page forever: stop at it.
                Some(t) if !t.is_empty() && t != page_token => page_token = t,
                _ => break,
            }
        }
        if found.len() != 1 {
            let zones: Vec<&str> = found.iter().filter_map(|i| i.zone.as_deref()).map(last_segment).collect();
            return Err(ExecError::Skip(match zones.len() {
                0 => format!(
                    "{what}: no such VM in any zone; it no longer exists (or the alert names the wrong project)"
                ),
                n => format!("{what}: {n} VMs match (zones {}); give the zone in the alert", zones.join(", ")),
            }));
        }
        let instance = found.remove(0);
        let zone_url = instance.zone.as_deref().unwrap_or_default();
        let zone = last_segment(zone_url)
            .parse::<Zone>()
            .map_err(|e| ExecError::Permanent(format!("Compute returned an invalid zone {zone_url:?}: {e}")))?;
        Ok((zone.to_string(), instance))
    }
}

//! Quarantine and forensic access through VPC firewall rules. Rules are ensured, not blindly
//! created: 409 `alreadyExists` is success when the existing rule says the same thing, and a clear
//! error when a rule of that name says something else (riposte never overwrites a rule it did not
//! write). Only then is the quarantine tag added to the VM, so a tagged VM is always contained.

use futures_util::future::join_all;
use google_cloud_compute_v1::model::Firewall;
use google_cloud_compute_v1::model::firewall::Direction;
use google_cloud_compute_v1::model::network_interface::StackType;
use riposte_core::action::{ForensicSsh, Quarantine};
use riposte_core::executor::ExecError;
use riposte_core::firewall::{FirewallRule, RuleFor};
use riposte_core::names::{ProjectId, is_gce_resource_name};
use riposte_core::requests::request_id;

use super::call::with_retries;
use super::instance::Vm;
use super::operation::Scope;
use super::{ComputeExecutor, Journal, StepContext};

/// The comparable content of a rule: what it matches and what it does.
#[derive(Debug, PartialEq, Eq)]
struct RuleContent {
    network: String,
    direction: String,
    priority: i32,
    action: Vec<String>,
    source_ranges: Vec<String>,
    destination_ranges: Vec<String>,
    source_tags: Vec<String>,
    target_tags: Vec<String>,
    disabled: bool,
}

/// `projects/p/global/networks/n` from any form of the network URL.
fn network_path(url: &str) -> String {
    url.find("projects/").map_or(url, |i| &url[i..]).to_string()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

impl RuleContent {
    fn of(f: &Firewall) -> RuleContent {
        let rules = |kind: &str, proto: &Option<String>, ports: &[String]| {
            format!(
                "{kind} {}:{}",
                proto.as_deref().unwrap_or("").to_ascii_lowercase(),
                sorted(ports.to_vec()).join(",")
            )
        };
        let mut action: Vec<String> = f.allowed.iter().map(|a| rules("allow", &a.ip_protocol, &a.ports)).collect();
        action.extend(f.denied.iter().map(|d| rules("deny", &d.ip_protocol, &d.ports)));
        RuleContent {
            network: network_path(f.network.as_deref().unwrap_or("")),
            direction: match &f.direction {
                Some(Direction::Egress) => "EGRESS".into(),
                Some(Direction::Ingress) | None => "INGRESS".into(),
                Some(other) => other.name().unwrap_or("UNKNOWN").into(),
            },
            priority: f.priority.unwrap_or(1000),
            action: sorted(action),
            source_ranges: sorted(f.source_ranges.clone()),
            destination_ranges: sorted(f.destination_ranges.clone()),
            source_tags: sorted(f.source_tags.clone()),
            target_tags: sorted(f.target_tags.clone()),
            disabled: f.disabled.unwrap_or(false),
        }
    }

    /// What differs, field by field, for the error message.
    fn differences(&self, want: &RuleContent) -> Vec<String> {
        let mut out = Vec::new();
        let mut cmp = |field: &str, have: String, wanted: String| {
            if have != wanted {
                out.push(format!("{field} is {have}, riposte needs {wanted}"));
            }
        };
        cmp("network", self.network.clone(), want.network.clone());
        cmp("direction", self.direction.clone(), want.direction.clone());
        cmp("priority", self.priority.to_string(), want.priority.to_string());
        cmp("action", format!("{:?}", self.action), format!("{:?}", want.action));
        cmp("sourceRanges", format!("{:?}", self.source_ranges), format!("{:?}", want.source_ranges));
        cmp("destinationRanges", format!("{:?}", self.destination_ranges), format!("{:?}", want.destination_ranges));
        cmp("sourceTags", format!("{:?}", self.source_tags), format!("{:?}", want.source_tags));
        cmp("targetTags", format!("{:?}", self.target_tags), format!("{:?}", want.target_tags));
        cmp("disabled", self.disabled.to_string(), want.disabled.to_string());
        out
    }
}

/// A VPC network a VM is attached to. Its rules live in the network's own project, which for a
/// Shared VPC is the host project, not the VM's.
pub(crate) struct Network {
    /// The network URL as the VM's interface gives it.
    url: String,
    /// The project that owns the network (and its firewall rules).
    project: String,
    /// The network's name.
    name: String,
}

/// The networks of the VM's interfaces, in interface order, without repeats. Project and name
/// are read from the URL and validated: they go into request paths.
fn networks(vm: &Vm) -> Result<Vec<Network>, ExecError> {
    let mut out: Vec<Network> = Vec::new();
    for url in vm.instance.network_interfaces.iter().filter_map(|n| n.network.as_deref()) {
        if out.iter().any(|n| n.url == url) {
            continue;
        }
        let path = network_path(url);
        let parts: Vec<&str> = path.split('/').collect();
        let ["projects", project, "global", "networks", name] = parts.as_slice() else {
            return Err(ExecError::Permanent(format!("{}: unexpected network URL {url:?}", vm.path())));
        };
        let project = project
            .parse::<ProjectId>()
            .map_err(|e| ExecError::Permanent(format!("{}: network URL {url:?}: {e}", vm.path())))?;
        if !is_gce_resource_name(name) {
            return Err(ExecError::Permanent(format!("{}: network URL {url:?}: invalid network name", vm.path())));
        }
        out.push(Network { url: url.to_string(), project: project.to_string(), name: name.to_string() });
    }
    if out.is_empty() {
        return Err(ExecError::Permanent(format!("{} has no network interface", vm.path())));
    }
    Ok(out)
}

/// The SDK value of `rule` on `net`: read from the body the dry run shows, so the two cannot differ.
fn firewall(rule: &FirewallRule, net: &Network) -> Result<Firewall, ExecError> {
    serde_json::from_value(rule.body(&rule.name_on(&net.name), &net.url))
        .map_err(|e| ExecError::Permanent(format!("firewall rule {}: {e}", rule.name)))
}

/// Whether any interface of the VM has IPv6 (dual-stack or IPv6-only).
fn has_ipv6(vm: &Vm) -> bool {
    vm.instance.network_interfaces.iter().any(|n| {
        matches!(n.stack_type, Some(StackType::Ipv4Ipv6 | StackType::Ipv6Only))
            || n.ipv_6_address.is_some()
            || !n.ipv_6_access_configs.is_empty()
    })
}

impl ComputeExecutor {
    /// `quarantine_instance`: deny-all egress (priority 0) and ingress (priority 1) rules for the
    /// tag on every network the VM is attached to, then the tag on the VM.
    pub(crate) async fn quarantine(
        &self,
        vm: &Vm,
        q: &Quarantine,
        ctx: &StepContext<'_>,
        journal: &mut Journal,
    ) -> Result<String, ExecError> {
        let nets = networks(vm)?;
        let ipv6 = has_ipv6(vm);
        let mut rules = Vec::new();
        for net in &nets {
            for rule in q.rules() {
                if rule.created_for == RuleFor::Ipv6 && !ipv6 {
                    continue;
                }
                let rid = request_id(ctx.key, &rule.request_salt(&net.project, &net.name));
                rules.push((net, firewall(&rule, net)?, rid));
            }
        }
        // The rules are independent: create them concurrently, then tag.
        let outcomes = join_all(rules.iter().map(|(net, rule, rid)| self.ensure_rule(&net.project, rule, rid))).await;
        let mut lines = Vec::new();
        for ((net, rule, rid), outcome) in rules.iter().zip(outcomes) {
            let (name, created) = outcome?;
            if created {
                let url = self.url(&format!("projects/{}/global/firewalls?requestId={rid}", net.project));
                journal.sent("POST", url, Some(rule), None);
            }
            lines.push(format!("{name} {}", if created { "created" } else { "present" }));
        }
        let tagged = self.add_tag(vm, &q.tag, ctx, journal).await?;
        Ok(format!(
            "{} quarantined: rules {}; tag {} {}",
            vm.path(),
            lines.join(", "),
            q.tag,
            if tagged { "added" } else { "already present" }
        ))
    }

    /// `allow_forensic_ssh`: tcp:22 from the forensics source tag to the quarantine tag, priority 0.
    pub(crate) async fn allow_forensic_ssh(
        &self,
        vm: &Vm,
        f: &ForensicSsh,
        ctx: &StepContext<'_>,
        journal: &mut Journal,
    ) -> Result<String, ExecError> {
        // The SSH rule goes on the network of the first interface, where the forensics host reaches it.
        let nets = networks(vm)?;
        let Some(net) = nets.first() else { return Err(ExecError::Permanent(format!("{} has no network", vm.path()))) };
        let spec = f.rule();
        let rule = firewall(&spec, net)?;
        let rid = request_id(ctx.key, &spec.request_salt(&net.project, &net.name));
        let (name, created) = self.ensure_rule(&net.project, &rule, &rid).await?;
        if created {
            let url = self.url(&format!("projects/{}/global/firewalls?requestId={rid}", net.project));
            journal.sent("POST", url, Some(&rule), None);
        }
        Ok(format!(
            "forensic SSH from tag {} to tag {}: rule {name} {}",
            f.source_tag,
            f.quarantine_tag,
            if created { "created" } else { "present" }
        ))
    }

    /// Creates `rule` unless an identical one exists. Returns its name and whether it was created.
    async fn ensure_rule(&self, project: &str, rule: &Firewall, rid: &str) -> Result<(String, bool), ExecError> {
        let name = rule.name.clone().unwrap_or_default();
        let what = format!("firewall rule {name}");
        let sent = with_retries(&self.settings.retry, || {
            self.clients.firewalls.insert().set_project(project).set_request_id(rid).set_body(rule.clone()).send()
        })
        .await;
        match sent {
            Ok(op) => match self.wait(project, Scope::Global, op, &what).await? {
                Ok(()) => Ok((name, true)),
                Err(failed) if failed.code == "RESOURCE_ALREADY_EXISTS" => self.compare_rule(project, rule).await,
                Err(failed) => Err(failed.into_exec(&what)),
            },
            Err(e) if e.already_exists() => self.compare_rule(project, rule).await,
            Err(e) => Err(e.into_exec(&what)),
        }
    }

    /// An existing rule of the same name is fine when it says the same thing.
    async fn compare_rule(&self, project: &str, want: &Firewall) -> Result<(String, bool), ExecError> {
        let name = want.name.clone().unwrap_or_default();
        let have = with_retries(&self.settings.retry, || {
            self.clients.firewalls.get().set_project(project).set_firewall(&name).send()
        })
        .await
        .map_err(|e| {
            if e.not_found() {
                // Another writer's insert answered 409 but its operation has not finished yet.
                ExecError::Retryable(format!("firewall rule {name} is being created by someone else; will check again"))
            } else {
                e.into_exec(&format!("reading existing firewall rule {name}"))
            }
        })?;
        let differences = RuleContent::of(&have).differences(&RuleContent::of(want));
        if differences.is_empty() {
            Ok((name, false))
        } else {
            Err(ExecError::Permanent(format!(
                "firewall rule {name} already exists with different content ({}); riposte does not overwrite it: \
                 delete or rename it, or give the policy another rule name",
                differences.join("; ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_network() -> Network {
        Network {
            url: "https://www.googleapis.com/compute/v1/projects/net-host/global/networks/shared".into(),
            project: "net-host".into(),
            name: "shared".into(),
        }
    }

    /// The SDK value sent is the body the dry run shows, field for field: nothing the SDK does not
    /// know (it would be kept aside, not sent as meant) and nothing lost.
    #[test]
    fn each_rule_sent_is_the_body_the_dry_run_shows() {
        let net = default_network();
        let mut rules = Quarantine::default().rules();
        rules.push(ForensicSsh::default().rule());
        for rule in &rules {
            let sent = firewall(rule, &net).expect("a valid Firewall");
            let shown = rule.body(&rule.name_on(&net.name), &net.url);
            assert_eq!(serde_json::to_value(&sent).expect("serialise"), shown, "{}", rule.purpose);
            let content = RuleContent::of(&sent);
            assert_eq!(content.network, "projects/net-host/global/networks/shared");
            assert_eq!(content.priority, rule.priority);
        }
        let egress = RuleContent::of(&firewall(&rules[0], &net).expect("egress"));
        assert_eq!((egress.direction.as_str(), egress.action.clone()), ("EGRESS", vec!["deny all:".to_string()]));
        assert_eq!(egress.destination_ranges, ["0.0.0.0/0"]);
        let ssh = RuleContent::of(&firewall(&rules[4], &net).expect("ssh"));
        assert_eq!((ssh.direction.as_str(), ssh.action.clone()), ("INGRESS", vec!["allow tcp:22".to_string()]));
        assert_eq!(
            (ssh.source_tags.clone(), ssh.target_tags.clone()),
            (vec!["intermediate".to_string()], vec!["riposte-quarantine".to_string()])
        );
    }
}

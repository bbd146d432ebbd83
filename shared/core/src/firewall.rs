//! The VPC firewall rules riposte creates, described once: the dry run renders these descriptions
//! and the Compute executor sends them, so what a dry run shows is what a real run creates,
//! down to the IPv6 pair a dual-stack VM gets and the `requestId` of each insert.

use serde_json::{Value, json};

use crate::digest::digest;

/// Whether a rule matches traffic to the VM or from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Traffic reaching the VM: the ranges are sources.
    Ingress,
    /// Traffic leaving the VM: the ranges are destinations.
    Egress,
}

/// Which VMs a rule is created for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleFor {
    /// Every VM the action runs on.
    Every,
    /// VMs with an IPv6 interface (dual-stack or IPv6-only): one rule cannot mix IPv4 and IPv6
    /// ranges, so they need a second rule.
    Ipv6,
}

/// What a rule does to the traffic it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Drops every protocol.
    DenyAll,
    /// Lets this protocol through, on these ports.
    Allow {
        /// `IPProtocol` as Compute spells it (`tcp`).
        protocol: &'static str,
        /// Port numbers or ranges.
        ports: Vec<&'static str>,
    },
}

/// One firewall rule, as created on each network the VM is attached to (in the network's
/// project, the host project of a Shared VPC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallRule {
    /// The configured name; on a network the rule is named [`FirewallRule::name_on`].
    pub name: String,
    /// Names the rule in its `requestId`: unique among the rules of one step.
    pub purpose: &'static str,
    /// Ingress or egress.
    pub direction: Direction,
    /// Lower wins; riposte's rules come before any of the project's (priority 0 and 1).
    pub priority: i32,
    /// The source ranges (ingress) or destination ranges (egress).
    pub ranges: Vec<&'static str>,
    /// Network tags of the VMs the traffic may come from (ingress only).
    pub source_tags: Vec<String>,
    /// The rule applies to VMs with one of these network tags.
    pub target_tags: Vec<String>,
    /// Deny or allow.
    pub verdict: Verdict,
    /// Shown in the console next to the rule: says riposte made it and why.
    pub description: &'static str,
    /// Every VM, or VMs with IPv6 only.
    pub created_for: RuleFor,
}

/// The rule name on `network`: the configured name plus the network's name. Rule names are unique
/// per project but a rule belongs to one network, so VMs on two VPCs of one project need two rules.
/// Too long for 63 characters, the network part becomes a hash.
fn rule_name(base: &str, network: &str) -> String {
    let full = format!("{base}-{network}");
    if full.len() <= 63 {
        return full;
    }
    let mut name: String = base.chars().take(54).collect();
    name.push('-');
    name.push_str(&digest(&[network])[..8]);
    name
}

impl FirewallRule {
    /// The rule's name on the network called `network`.
    pub fn name_on(&self, network: &str) -> String {
        rule_name(&self.name, network)
    }

    /// What the insert's `requestId` is derived from (with the step's idempotency key): the rule
    /// and the network, so each insert of a step is its own request and a retry repeats it.
    pub fn request_salt(&self, network_project: &str, network: &str) -> String {
        format!("{}/{network_project}/{network}", self.purpose)
    }

    /// The body of the insert: Compute Engine's `Firewall` resource, named `name`, on `network`
    /// (the network's URL).
    pub fn body(&self, name: &str, network: &str) -> Value {
        let mut body = json!({
            "name": name,
            "network": network,
            "direction": match self.direction { Direction::Ingress => "INGRESS", Direction::Egress => "EGRESS" },
            "priority": self.priority,
            "description": self.description,
        });
        if !self.ranges.is_empty() {
            let field = match self.direction {
                Direction::Ingress => "sourceRanges",
                Direction::Egress => "destinationRanges",
            };
            body[field] = json!(self.ranges);
        }
        if !self.source_tags.is_empty() {
            body["sourceTags"] = json!(self.source_tags);
        }
        if !self.target_tags.is_empty() {
            body["targetTags"] = json!(self.target_tags);
        }
        match &self.verdict {
            Verdict::DenyAll => body["denied"] = json!([{"IPProtocol": "all"}]),
            Verdict::Allow { protocol, ports } => body["allowed"] = json!([{"IPProtocol": protocol, "ports": ports}]),
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::{ForensicSsh, Quarantine};

    #[test]
    fn a_quarantine_denies_both_ways_and_ipv6_only_where_there_is_ipv6() {
        let rules = Quarantine::default().rules();
        let purposes: Vec<&str> = rules.iter().map(|r| r.purpose).collect();
        assert_eq!(purposes, ["egress", "ingress", "egress6", "ingress6"]);
        let v6: Vec<&FirewallRule> = rules.iter().filter(|r| r.created_for == RuleFor::Ipv6).collect();
        assert!(v6.iter().all(|r| r.ranges == ["::/0"] && r.name.ends_with("-v6")), "{v6:?}");
        let egress = rules[0].body("riposte-quarantine-deny-egress-default", "projects/p/global/networks/default");
        assert_eq!(egress["destinationRanges"], json!(["0.0.0.0/0"]));
        assert_eq!(egress["denied"], json!([{"IPProtocol": "all"}]));
        assert_eq!(
            (egress["priority"].clone(), egress["targetTags"].clone()),
            (json!(0), json!(["riposte-quarantine"]))
        );
        let ingress = rules[1].body("n", "u");
        assert_eq!((ingress["sourceRanges"].clone(), ingress["priority"].clone()), (json!(["0.0.0.0/0"]), json!(1)));
        assert!(ingress.get("destinationRanges").is_none());
    }

    #[test]
    fn salts_differ_per_rule_and_network() {
        let rules = Quarantine::default().rules();
        let mut salts: Vec<String> = rules.iter().map(|r| r.request_salt("p", "default")).collect();
        salts.extend(rules.iter().map(|r| r.request_salt("p", "other")));
        salts.push(ForensicSsh::default().rule().request_salt("p", "default"));
        let distinct: std::collections::BTreeSet<&String> = salts.iter().collect();
        assert_eq!(distinct.len(), salts.len(), "{salts:?}");
    }

    #[test]
    fn long_rule_names_end_in_a_hash_of_the_network() {
        let base = "r".repeat(60);
        let (a, b) = (rule_name(&base, "net-a"), rule_name(&base, "net-b"));
        assert!(a.len() <= 63 && b.len() <= 63 && a != b, "{a} {b}");
        assert_eq!(rule_name("riposte-forensic-ssh", "default"), "riposte-forensic-ssh-default");
    }
}

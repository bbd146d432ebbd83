//! Validated names for Google Cloud and Kubernetes objects.
//!
//! Every value that ends up in a request URL is one of these types, so no event field ever reaches
//! a URL path without being checked against the naming rules of the API it is sent to.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid name of some kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {kind}: {rule}")]
pub struct InvalidName {
    /// What kind of name was expected.
    pub kind: &'static str,
    /// The rejected value (names are not secrets).
    pub value: String,
    /// The rule it breaks.
    pub rule: &'static str,
}

/// Declares a string newtype whose only constructor checks `$check`.
macro_rules! validated_name {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $rule:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let check: fn(&str) -> bool = $check;
                if check(s) {
                    Ok($name(s.to_string()))
                } else {
                    Err(InvalidName { kind: $kind, value: s.to_string(), rule: $rule })
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// RFC 1035 label: starts with a letter, lowercase letters, digits and hyphens, ends with a letter
/// or digit, at most `max` characters.
fn is_rfc1035(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.ends_with(is_lower_alnum)
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
}

/// RFC 1123 label: like RFC 1035 but may start with a digit.
fn is_rfc1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(is_lower_alnum)
        && s.ends_with(is_lower_alnum)
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
fn is_rfc1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_rfc1123_label)
}

/// `region` is `<area>-<place><digit(s)>`, e.g. `europe-west1`, `northamerica-northeast2`.
fn is_region(s: &str) -> bool {
    let mut parts = s.split('-');
    let (Some(area), Some(place), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let digits = place.trim_start_matches(|c: char| c.is_ascii_lowercase());
    !area.is_empty()
        && area.chars().all(|c| c.is_ascii_lowercase())
        && digits.len() < place.len()
        && !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
}

fn is_zone(s: &str) -> bool {
    match s.rsplit_once('-') {
        Some((region, letter)) => {
            is_region(region) && letter.len() == 1 && letter.chars().all(|c| c.is_ascii_lowercase())
        }
        None => false,
    }
}

fn is_project_id(s: &str) -> bool {
    // Domain-scoped projects ("example.com:my-project") still exist in old organisations.
    let id = match s.split_once(':') {
        Some((domain, id)) => {
            if domain.is_empty() || !domain.chars().all(|c| is_lower_alnum(c) || c == '.' || c == '-') {
                return false;
            }
            id
        }
        None => s,
    };
    (6..=30).contains(&id.len()) && is_rfc1035(id, 30)
}

validated_name!(
    /// A Google Cloud project id (`shop-prod`), 6–30 characters.
    ProjectId,
    "project id",
    "6-30 lowercase letters, digits or hyphens, starting with a letter",
    is_project_id
);
validated_name!(
    /// A Compute Engine zone (`europe-west1-b`).
    Zone,
    "zone",
    "a region followed by a zone letter, like europe-west1-b",
    is_zone
);
validated_name!(
    /// A cluster location: a region (`europe-west1`) or a zone (`europe-west1-b`).
    Location,
    "location",
    "a region like europe-west1 or a zone like europe-west1-b",
    |s| is_region(s) || is_zone(s)
);
validated_name!(
    /// A GKE cluster name (RFC 1035, at most 40 characters).
    ClusterName,
    "cluster name",
    "lowercase letters, digits and hyphens, starting with a letter, at most 40 characters",
    |s| is_rfc1035(s, 40)
);
validated_name!(
    /// A Compute Engine instance name (RFC 1035, at most 63 characters). A GKE node's name is its VM's name.
    InstanceName,
    "instance name",
    "lowercase letters, digits and hyphens, starting with a letter, at most 63 characters",
    |s| is_rfc1035(s, 63)
);
validated_name!(
    /// A Compute Engine instance id (an unsigned 64-bit number in decimal).
    InstanceId,
    "instance id",
    "a decimal number",
    |s| !s.is_empty() && s.len() <= 20 && s.parse::<u64>().is_ok()
);
validated_name!(
    /// A Kubernetes namespace (RFC 1123 label).
    Namespace,
    "namespace",
    "lowercase letters, digits and hyphens, at most 63 characters",
    is_rfc1123_label
);
validated_name!(
    /// A Kubernetes object name such as a pod or node (RFC 1123 subdomain).
    K8sName,
    "Kubernetes object name",
    "lowercase letters, digits, hyphens and dots, at most 253 characters",
    is_rfc1123_subdomain
);

/// The parts of a Compute Engine label: key and value rules.
pub fn is_gce_label_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| is_lower_alnum(c) || c == '-' || c == '_')
}

/// Whether `s` is a valid Compute Engine label value (may be empty).
pub fn is_gce_label_value(s: &str) -> bool {
    s.len() <= 63 && s.chars().all(|c| is_lower_alnum(c) || c == '-' || c == '_')
}

/// Whether `s` is a valid Kubernetes label key (`[prefix/]name`).
pub fn is_k8s_label_key(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_rfc1123_subdomain) && is_k8s_label_value(name) && !name.is_empty()
}

/// Whether `s` is a valid Kubernetes label value.
pub fn is_k8s_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
}

/// Whether `s` is a valid Kubernetes container name (an RFC 1123 label).
pub fn is_container_name(s: &str) -> bool {
    is_rfc1123_label(s)
}

/// Whether `s` is a valid Cloud Storage bucket name: 3–63 lowercase letters, digits, hyphens,
/// underscores and dots, starting and ending with a letter or digit, not starting with `goog`
/// (dotted names of up to 222 characters exist, but need domain verification: not supported).
pub fn is_bucket_name(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.starts_with(is_lower_alnum)
        && s.ends_with(is_lower_alnum)
        && s.chars().all(|c| is_lower_alnum(c) || matches!(c, '-' | '_' | '.'))
        && !s.starts_with("goog")
        && !s.contains("..")
}

/// Whether `s` is a valid Compute Engine resource name (firewall rule, network tag): RFC 1035, ≤ 63.
pub fn is_gce_resource_name(s: &str) -> bool {
    is_rfc1035(s, 63)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_real_names() {
        assert!("shop-prod".parse::<ProjectId>().is_ok());
        assert!("example.com:shop-prod".parse::<ProjectId>().is_ok());
        assert!("europe-west1-b".parse::<Zone>().is_ok());
        assert!("northamerica-northeast1-a".parse::<Zone>().is_ok());
        assert!("europe-west1".parse::<Location>().is_ok());
        assert!("us-central1-c".parse::<Location>().is_ok());
        assert!("prod-eu".parse::<ClusterName>().is_ok());
        assert!("gke-prod-eu-default-pool-5c1d2e3f-k9zt".parse::<InstanceName>().is_ok());
        assert!("7052018843299811234".parse::<InstanceId>().is_ok());
        assert!("api-7d9f8b6c5-x2lqp".parse::<K8sName>().is_ok());
        assert!("kube-system".parse::<Namespace>().is_ok());
    }

    #[test]
    fn rejects_names_that_could_escape_a_url_path() {
        for bad in ["../etc", "a/b", "shop prod", "UPPER", "x?y=1", "", "-lead", "trail-", "a%2F"] {
            assert!(bad.parse::<InstanceName>().is_err(), "{bad}");
            assert!(bad.parse::<K8sName>().is_err(), "{bad}");
            assert!(bad.parse::<Namespace>().is_err(), "{bad}");
        }
        assert!("the name of the VM instance".parse::<InstanceName>().is_err());
        assert!("europe-west1".parse::<Zone>().is_err());
        assert!("short".parse::<ProjectId>().is_err());
        let err = "a/b".parse::<K8sName>().expect_err("slash");
        assert!(err.to_string().contains("not a valid Kubernetes object name"));
    }

    #[test]
    fn label_rules() {
        assert!(is_gce_label_key("riposte-incident"));
        assert!(!is_gce_label_key("Riposte"));
        assert!(is_gce_label_value(""));
        assert!(is_k8s_label_key("riposte.io/quarantine"));
        assert!(!is_k8s_label_key("bad key"));
        assert!(is_k8s_label_value("true"));
        assert!(!is_k8s_label_value("-x"));
    }

    proptest! {
        /// Nothing that passes validation can contain a character that changes a URL's structure.
        #[test]
        fn valid_names_are_url_path_safe(s in "\\PC{0,80}") {
            for ok in [
                s.parse::<InstanceName>().is_ok(),
                s.parse::<K8sName>().is_ok(),
                s.parse::<Namespace>().is_ok(),
                s.parse::<ProjectId>().is_ok() && !s.contains(':'),
                s.parse::<Zone>().is_ok(),
            ] {
                if ok {
                    prop_assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
                    prop_assert!(!s.contains(".."));
                }
            }
        }
    }
}

//! One ordered severity scale for every source.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Severity on riposte's single scale, ordered from least to most severe.
///
/// It is the syslog / Falco / Cloud Logging scale; every source maps onto it (see the README's
/// "Severity mapping" table), so one policy threshold works for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Debug information (Falco `Debug`, LogEntry `DEBUG`).
    Debug,
    /// Informational (Falco `Informational`, LogEntry `INFO` and `DEFAULT`).
    Info,
    /// Normal but significant (Falco `Notice`, LogEntry `NOTICE`).
    Notice,
    /// Warning (Falco `Warning`, Monitoring `Warning` and "no severity").
    Warning,
    /// Error (Falco `Error`, Monitoring `Error`).
    Error,
    /// Critical (Falco `Critical`, Monitoring `Critical`).
    Critical,
    /// Action must be taken immediately (Falco `Alert`, LogEntry `ALERT`).
    Alert,
    /// System unusable (Falco `Emergency`, LogEntry `EMERGENCY`).
    Emergency,
}

/// Every severity, least severe first.
pub const ALL_SEVERITIES: [Severity; 8] = [
    Severity::Debug,
    Severity::Info,
    Severity::Notice,
    Severity::Warning,
    Severity::Error,
    Severity::Critical,
    Severity::Alert,
    Severity::Emergency,
];

impl Severity {
    /// The lowercase name used in policies and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Debug => "debug",
            Severity::Info => "info",
            Severity::Notice => "notice",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
            Severity::Alert => "alert",
            Severity::Emergency => "emergency",
        }
    }

    /// Maps a Falco priority. Falco and Falcosidekick parse priorities case-insensitively and accept
    /// both `Informational` and `Info`, so this does too.
    pub fn from_falco_priority(priority: &str) -> Option<Severity> {
        match priority.trim().to_ascii_lowercase().as_str() {
            "emergency" => Some(Severity::Emergency),
            "alert" => Some(Severity::Alert),
            "critical" => Some(Severity::Critical),
            "error" => Some(Severity::Error),
            "warning" => Some(Severity::Warning),
            "notice" => Some(Severity::Notice),
            "informational" | "info" => Some(Severity::Info),
            "debug" => Some(Severity::Debug),
            _ => None,
        }
    }

    /// Maps a Cloud Monitoring incident severity (`Critical`, `Error`, `Warning`, `no severity`,
    /// any case). An alert policy without a severity still fired, so it is a `warning`, not noise.
    pub fn from_monitoring(severity: Option<&str>) -> Option<Severity> {
        match severity.map(|s| s.trim().to_ascii_lowercase()) {
            None => Some(Severity::Warning),
            Some(s) => match s.as_str() {
                "critical" => Some(Severity::Critical),
                "error" => Some(Severity::Error),
                "warning" => Some(Severity::Warning),
                "" | "no severity" | "severity_unspecified" => Some(Severity::Warning),
                _ => None,
            },
        }
    }

    /// Maps a Cloud Logging `LogSeverity`, by name (any case) or by its number (0, 100, … 800).
    /// `DEFAULT` (no severity assigned) counts as `info`.
    pub fn from_log_severity(value: &serde_json::Value) -> Option<Severity> {
        match value {
            serde_json::Value::Null => Some(Severity::Info),
            serde_json::Value::String(s) => match s.trim().to_ascii_uppercase().as_str() {
                "" | "DEFAULT" | "INFO" => Some(Severity::Info),
                "DEBUG" => Some(Severity::Debug),
                "NOTICE" => Some(Severity::Notice),
                "WARNING" => Some(Severity::Warning),
                "ERROR" => Some(Severity::Error),
                "CRITICAL" => Some(Severity::Critical),
                "ALERT" => Some(Severity::Alert),
                "EMERGENCY" => Some(Severity::Emergency),
                _ => None,
            },
            serde_json::Value::Number(n) => match n.as_u64()? {
                0 | 200 => Some(Severity::Info),
                100 => Some(Severity::Debug),
                300 => Some(Severity::Notice),
                400 => Some(Severity::Warning),
                500 => Some(Severity::Error),
                600 => Some(Severity::Critical),
                700 => Some(Severity::Alert),
                800 => Some(Severity::Emergency),
                _ => None,
            },
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a severity name that is not on the scale.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?}; expected one of debug, info, notice, warning, error, critical, alert, emergency")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Policies use riposte's names; Falco's long "informational" is accepted as a courtesy.
        Severity::from_falco_priority(s).ok_or_else(|| UnknownSeverity(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_is_ordered_like_syslog() {
        let mut sorted = ALL_SEVERITIES;
        sorted.sort();
        assert_eq!(sorted, ALL_SEVERITIES);
        assert!(Severity::Critical > Severity::Warning);
        assert!(Severity::Debug < Severity::Info);
    }

    #[test]
    fn falco_priorities_map_case_insensitively() {
        assert_eq!(Severity::from_falco_priority("Critical"), Some(Severity::Critical));
        assert_eq!(Severity::from_falco_priority("CRITICAL"), Some(Severity::Critical));
        assert_eq!(Severity::from_falco_priority("Informational"), Some(Severity::Info));
        assert_eq!(Severity::from_falco_priority("info"), Some(Severity::Info));
        assert_eq!(Severity::from_falco_priority("Emergency"), Some(Severity::Emergency));
        assert_eq!(Severity::from_falco_priority("loud"), None);
    }

    #[test]
    fn monitoring_severities_map_and_no_severity_is_warning() {
        assert_eq!(Severity::from_monitoring(Some("Critical")), Some(Severity::Critical));
        assert_eq!(Severity::from_monitoring(Some("no severity")), Some(Severity::Warning));
        assert_eq!(Severity::from_monitoring(None), Some(Severity::Warning));
        assert_eq!(Severity::from_monitoring(Some("Error")), Some(Severity::Error));
        assert_eq!(Severity::from_monitoring(Some("bogus")), None);
    }

    #[test]
    fn log_severities_map_by_name_and_number() {
        use serde_json::json;
        assert_eq!(Severity::from_log_severity(&json!("NOTICE")), Some(Severity::Notice));
        assert_eq!(Severity::from_log_severity(&json!("DEFAULT")), Some(Severity::Info));
        assert_eq!(Severity::from_log_severity(&json!(600)), Some(Severity::Critical));
        assert_eq!(Severity::from_log_severity(&json!(601)), None);
        assert_eq!(Severity::from_log_severity(&json!(true)), None);
    }
}

//! The optional CEL `when` condition of a policy, compiled once at load.

use std::sync::Arc;

use crate::alert::Alert;

/// The variables a `when` expression can use.
pub const CEL_VARIABLES: [&str; 9] =
    ["source", "severity", "severity_level", "rule", "summary", "status", "fields", "tags", "resource"];

/// A compiled CEL expression that must evaluate to a boolean.
#[derive(Clone)]
pub struct Condition {
    source: String,
    program: Arc<cel::Program>,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

impl Condition {
    /// Compiles `source`; the error is the CEL parser's message.
    pub fn compile(source: &str) -> Result<Condition, String> {
        let program = cel::Program::compile(source)
            .map_err(|e| format!("invalid CEL expression: {}", e.to_string().replace('\n', "; ")))?;
        let references = program.references();
        let unknown: Vec<&str> = references
            .variables()
            .into_iter()
            .filter(|v| !CEL_VARIABLES.contains(v) && !is_macro_variable(source, v))
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "unknown variable(s) {} in CEL expression; available: {}",
                unknown.join(", "),
                CEL_VARIABLES.join(", ")
            ));
        }
        Ok(Condition { source: source.to_string(), program: Arc::new(program) })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the condition for `alert`: `Ok(true/false)`, or an error (a missing field, a
    /// non-boolean result) that makes the policy not match.
    pub fn evaluate(&self, alert: &Alert) -> Result<bool, String> {
        let mut ctx = cel::Context::default();
        let vars: [(&str, Result<cel::Value, cel::SerializationError>); 9] = [
            ("source", cel::to_value(alert.source.as_str())),
            ("severity", cel::to_value(alert.severity.as_str())),
            ("severity_level", cel::to_value(alert.severity as i64)),
            ("rule", cel::to_value(&alert.rule)),
            ("summary", cel::to_value(&alert.summary)),
            ("status", cel::to_value(alert.status)),
            ("fields", cel::to_value(&alert.fields)),
            ("tags", cel::to_value(&alert.tags)),
            ("resource", cel::to_value(&alert.resource)),
        ];
        for (name, value) in vars {
            let value = value.map_err(|e| format!("cannot expose {name} to CEL: {e}"))?;
            ctx.add_variable_from_value(name, value);
        }
        match self.program.execute(&ctx) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("`when` evaluated to {other:?}, not a boolean")),
            Err(e) => Err(format!("`when` failed: {e}")),
        }
    }
}

/// Whether `name` is bound by a comprehension macro in `source` (`tags.exists(t, t == "x")`).
fn is_macro_variable(source: &str, name: &str) -> bool {
    ["all", "exists", "exists_one", "map", "filter"]
        .iter()
        .any(|m| source.contains(&format!("{m}({name},")) || source.contains(&format!("{m}({name} ,")))
}

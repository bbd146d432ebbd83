//! riposte's effects on the outside world. Today: the chat notifiers (Slack, Google Chat, a
//! generic JSON webhook) and Secret Manager access for secrets named instead of given.

pub mod backoff;
pub mod compute;
pub mod evidence;
pub mod executor;
pub mod firestore;
pub mod gke;
pub mod notify;
pub mod retry;
pub mod secrets;

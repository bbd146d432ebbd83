//! riposte's effects on the outside world. Today: the chat notifiers (Slack, Google Chat, a
//! generic JSON webhook) and the registry that builds every configured notifier.

pub mod notify;

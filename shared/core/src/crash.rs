//! Crash points for the kill -9 tests. riposte's own binary never installs a hook, so in it
//! [`point`] does nothing. The test package's build of the binary installs one (reading
//! `RIPOSTE_CRASH_AT`): at the named point the process says so on stdout and stops making progress
//! there, so the test can kill it with SIGKILL at exactly that point.

use std::sync::OnceLock;

static HOOK: OnceLock<fn(&str) -> bool> = OnceLock::new();

/// Installs `stop_at`, which says whether to stop at a point. Only the test binary calls this.
pub fn install(stop_at: fn(&str) -> bool) {
    let _ = HOOK.set(stop_at);
}

/// Marks point `name` (`intake-recorded`, `step-claimed`, `step-executed`, `step-recorded`).
pub async fn point(name: &str) {
    if HOOK.get().is_some_and(|stop_at| stop_at(name)) {
        use std::io::Write as _;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "CRASH-POINT {name}");
        let _ = out.flush();
        std::future::pending::<()>().await;
    }
}

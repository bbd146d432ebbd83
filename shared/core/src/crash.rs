//! Crash points for the kill -9 tests. Built only with the `crash-points` feature, which only the
//! test package's build of the binary enables: at a named point, when `RIPOSTE_CRASH_AT` names it,
//! the process says so on stdout and stops making progress there, so the test can kill it with
//! SIGKILL at exactly that point. Without the feature this is an empty function.

/// Marks point `name` (`intake-recorded`, `step-claimed`, `step-executed`, `step-recorded`).
pub async fn point(name: &str) {
    #[cfg(feature = "crash-points")]
    if std::env::var("RIPOSTE_CRASH_AT").is_ok_and(|p| p == name) {
        use std::io::Write as _;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "CRASH-POINT {name}");
        let _ = out.flush();
        std::future::pending::<()>().await;
    }
    #[cfg(not(feature = "crash-points"))]
    let _ = name;
}

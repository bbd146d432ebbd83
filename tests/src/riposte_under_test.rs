//! The `riposte` command, built in the test package (see Cargo.toml), with the crash points of the
//! kill -9 tests armed: `RIPOSTE_CRASH_AT=step-executed` stops the process there. riposte's own
//! binary never arms them.

fn main() -> std::process::ExitCode {
    riposte_core::crash::install(|point| std::env::var("RIPOSTE_CRASH_AT").is_ok_and(|p| p == point));
    riposte::main()
}

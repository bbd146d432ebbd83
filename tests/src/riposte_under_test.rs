//! The `riposte` command, built in the test package (see Cargo.toml).

fn main() -> std::process::ExitCode {
    riposte::main()
}

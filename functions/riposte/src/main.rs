//! The `riposte` command.

fn main() -> std::process::ExitCode {
    riposte::main()
}

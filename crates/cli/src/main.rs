//! The `mcpvisor` binary: everything lives in the library (`mcpvisor_cli`).

fn main() -> std::process::ExitCode {
    mcpvisor_cli::main()
}

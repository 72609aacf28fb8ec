//! The `mcpvisor` command line (filled by issue #6).

fn main() {
    eprintln!("mcpvisor: the command line is not built yet (issue #6); the library crates and the test suite are usable now");
    std::process::exit(1);
}

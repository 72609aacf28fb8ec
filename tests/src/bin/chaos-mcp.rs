//! `chaos-mcp`: the fault-injecting MCP server of mcpvisor's integration tests.
//! Flags, tools and control actions are documented in `mcpvisor_tests::chaos`.

fn main() {
    mcpvisor_tests::chaos::run()
}

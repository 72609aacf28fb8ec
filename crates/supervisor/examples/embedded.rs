//! Embedding mcpvisor: register a server, wait for it, list its tools, call one, shut down.
//!
//! ```sh
//! cargo run -p mcpvisor-supervisor --example embedded            # the workspace's demo server
//! cargo run -p mcpvisor-supervisor --example embedded -- npx -y @modelcontextprotocol/server-everything
//! ```

use std::time::Duration;

use mcpvisor_supervisor::model::ServiceState;
use mcpvisor_supervisor::{Store, StoreOptions, Wait};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    let (command, args, tool, arguments) = if argv.is_empty() {
        (
            "cargo".to_owned(),
            ["run", "-q", "-p", "mcpvisor-tests", "--bin", "chaos-mcp"]
                .map(String::from)
                .to_vec(),
            "demo__echo",
            json!({"text": "hello from mcpvisor"}),
        )
    } else {
        let command = argv.remove(0);
        (
            command,
            argv,
            "demo__echo",
            json!({"message": "hello from mcpvisor"}),
        )
    };

    let store = Store::open(StoreOptions::new()).await?;
    let report = store
        .add_service(
            json!({"name": "demo", "command": command, "args": args,
                   "timeouts": {"connect": "300s"}}),
            Wait::None,
        )
        .await?;
    println!("registered: {:?}", report.added);

    store
        .wait_for(&["demo"], ServiceState::Healthy, Duration::from_secs(300))
        .await?;
    for tool in store.list_tools().await? {
        println!("tool: {}", tool.name);
    }

    let out = store
        .call_tool(tool, arguments.as_object().cloned(), None)
        .await?;
    println!("{tool} -> {}", out.result["content"][0]["text"]);

    store.shutdown().await;
    Ok(())
}

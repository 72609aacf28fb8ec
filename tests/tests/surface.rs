//! The MCP surface beyond tools (issue 12, DESIGN §14) through the Store, against real
//! server-everything over stdio and streamable HTTP: resources (all pages, templates, reads,
//! subscriptions and their updates), prompts, completions and the servers' log messages; URIs
//! that collide across services namespaced reversibly.

use std::time::Duration;

use mcpvisor_model::{Event, ServiceState};
use mcpvisor_supervisor::{EventStream, Store, StoreOptions, Wait};
use mcpvisor_tests::{deadline, free_port, node_server, HttpServer};
use rmcp::model::{ArgumentInfo, CompleteRequestParams, Reference, ResourceContents};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(30);

fn everything(name: &str) -> Value {
    json!({"name": name, "command": "node", "args": [node_server("server-everything"), "stdio"]})
}

async fn store_with(services: &[Value]) -> Store {
    let store = Store::open(StoreOptions::new()).await.unwrap();
    for s in services {
        store.add_service(s.clone(), Wait::None).await.unwrap();
    }
    let names: Vec<String> = services
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    store
        .wait_for(&refs, ServiceState::Healthy, LONG)
        .await
        .unwrap();
    store
}

fn text_of(c: &ResourceContents) -> String {
    match c {
        ResourceContents::TextResourceContents { text, .. } => text.clone(),
        other => format!("{other:?}"),
    }
}

async fn next_event(events: &mut EventStream, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    deadline(LONG, what, async {
        loop {
            match events.next().await {
                Some(e) if pred(&e) => return e,
                Some(_) => {}
                None => panic!("event stream ended"),
            }
        }
    })
    .await
}

/// One server: its URIs as written; reads of listed resources, of template-made URIs; prompts
/// named `service__prompt`; completions routed by prompt; capabilities known.
async fn one_server_surface(store: &Store, service: &str) {
    let caps = store.server_capabilities();
    let (_, c) = caps
        .iter()
        .find(|(n, _)| n == service)
        .expect("capabilities");
    assert!(c.resources.is_some() && c.prompts.is_some() && c.completions.is_some());
    // The same, asked of the one service; nothing for a name that is not a service.
    assert_eq!(store.service_capabilities(service).as_ref(), Some(c));
    assert_eq!(store.service_capabilities("no-such-service"), None);

    let resources = store.list_resources().await.unwrap();
    assert!(resources.len() >= 5, "{resources:?}");
    let first = &resources[0];
    assert_eq!(first.resource.uri, first.original_uri, "kept as written");
    assert!(
        first.resource.uri.starts_with("demo://resource/"),
        "{first:?}"
    );
    let read = store.read_resource(&first.resource.uri).await.unwrap();
    assert!(!read.contents.is_empty());

    let templates = store.list_resource_templates().await.unwrap();
    assert!(
        templates
            .iter()
            .any(|t| t.template.uri_template == "demo://resource/dynamic/text/{resourceId}"),
        "{templates:?}"
    );
    let made = store
        .read_resource("demo://resource/dynamic/text/7")
        .await
        .unwrap();
    assert!(text_of(&made.contents[0]).contains('7'), "{made:?}");

    let prompts = store.list_prompts().await.unwrap();
    let names: Vec<&str> = prompts.iter().map(|p| p.prompt.name.as_str()).collect();
    let args_prompt = format!("{service}__args-prompt");
    assert!(names.contains(&args_prompt.as_str()), "{names:?}");
    let got = store
        .get_prompt(&args_prompt, json!({"city": "Lyon"}).as_object().cloned())
        .await
        .unwrap();
    let said = serde_json::to_string(&got.messages).unwrap();
    assert!(said.contains("Lyon"), "{said}");
    // A bare name offered by one service only resolves too.
    assert!(store.get_prompt("simple-prompt", None).await.is_ok());

    let done = store
        .complete(CompleteRequestParams::new(
            Reference::for_prompt(format!("{service}__completable-prompt")),
            ArgumentInfo::new("department", "Eng"),
        ))
        .await
        .unwrap();
    assert_eq!(done.completion.values, ["Engineering"]);
    let err = store.get_prompt("nope", None).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("no service offers the prompt 'nope'"),
        "{err}"
    );
}

#[tokio::test]
async fn resources_prompts_and_completions_of_a_stdio_server() {
    let store = store_with(&[everything("ev")]).await;
    one_server_surface(&store, "ev").await;
    let err = store.read_resource("nothing://here").await.unwrap_err();
    assert!(err.to_string().contains("nothing://here"), "{err}");
    // A stopped service declares nothing.
    store.stop_service("ev", false).await.unwrap();
    assert_eq!(store.service_capabilities("ev"), None);
    assert!(store.server_capabilities().is_empty());
    store.shutdown().await;
}

#[tokio::test]
async fn resources_prompts_and_completions_of_a_streamable_http_server() {
    let port = free_port();
    let server = HttpServer::start_mode(port, "streamableHttp").await;
    let store =
        store_with(&[json!({"name": "web", "url": format!("http://127.0.0.1:{port}/mcp")})]).await;
    one_server_surface(&store, "web").await;
    store.shutdown().await;
    server.kill().await;
}

#[tokio::test]
async fn colliding_uris_are_namespaced_and_map_back_to_their_service() {
    let store = store_with(&[everything("a"), everything("b")]).await;
    let resources = store.list_resources().await.unwrap();
    let a_doc = resources
        .iter()
        .find(|r| r.service == "a" && r.original_uri.contains("/static/document/"))
        .expect("a document of a");
    assert_eq!(
        a_doc.resource.uri,
        format!("mcpvisor://a/{}", a_doc.original_uri),
        "both servers offer it"
    );
    let read = store.read_resource(&a_doc.resource.uri).await.unwrap();
    match &read.contents[0] {
        ResourceContents::TextResourceContents { uri, .. }
        | ResourceContents::BlobResourceContents { uri, .. } => {
            assert_eq!(
                uri, &a_doc.original_uri,
                "read from the server by its own URI"
            )
        }
        #[allow(unreachable_patterns)]
        other => panic!("{other:?}"),
    }
    // Prompts of the same name stay apart by their service prefix.
    let prompts = store.list_prompts().await.unwrap();
    assert!(prompts.iter().any(|p| p.prompt.name == "a__simple-prompt"));
    assert!(prompts.iter().any(|p| p.prompt.name == "b__simple-prompt"));
    let err = store.get_prompt("simple-prompt", None).await.unwrap_err();
    assert!(err.to_string().contains("did you mean"), "ambiguous: {err}");
    store.shutdown().await;
}

#[tokio::test]
async fn a_subscription_brings_updates_and_log_messages_are_kept_and_published() {
    let store = store_with(&[everything("ev")]).await;
    let mut events = store.subscribe().await.unwrap();
    // Subscribed by a URI never listed before: found by listing.
    let uri = "demo://resource/static/document/architecture.md";
    store.subscribe_resource(uri).await.unwrap();
    // server-everything sends updates of subscribed resources once asked to.
    store
        .call_tool("ev__toggle-subscriber-updates", None, None)
        .await
        .unwrap();
    let e = next_event(&mut events, "a resource update", |e| {
        matches!(e, Event::ResourceUpdated { .. })
    })
    .await;
    let Event::ResourceUpdated {
        service, uri: got, ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!((service.to_string(), got.as_str()), ("ev".into(), uri));
    store.unsubscribe_resource(uri).await.unwrap();

    store
        .call_tool("ev__toggle-simulated-logging", None, None)
        .await
        .unwrap();
    let e = next_event(&mut events, "a server log message", |e| {
        matches!(e, Event::ServerLog { .. })
    })
    .await;
    let Event::ServerLog { level, data, .. } = e else {
        unreachable!()
    };
    let logged = store.service_logs("ev", 200).unwrap();
    assert!(
        logged
            .iter()
            .any(|l| l.starts_with(&format!("[log {level}]"))
                && l.contains(data.as_str().unwrap_or("?"))),
        "kept beside stderr: {logged:?}"
    );
    store.shutdown().await;
}

/// Runs the real `mcpvisor` binary to completion (killed after a minute).
fn mcpvisor(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    use std::io::Read;
    let mut child = std::process::Command::new(mcpvisor_tests::mcpvisor_bin())
        .args(args)
        .arg("--config")
        .arg(dir.join("mcp.json"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env_remove("MCPVISOR_STATE_DIR")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            panic!("mcpvisor {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().unwrap_or(-1), out, err)
}

#[test]
fn the_cli_lists_and_reads_resources_and_gets_prompts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mcp.json"),
        json!({"mcpServers": {"ev": {"command": "node", "args": [node_server("server-everything"), "stdio"]}}})
            .to_string(),
    )
    .unwrap();
    let (code, out, err) = mcpvisor(dir.path(), &["resources", "--json"]);
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    let uri = listed
        .as_array()
        .unwrap()
        .iter()
        .find_map(|r| {
            r["uri"]
                .as_str()
                .filter(|u| u.contains("/static/document/"))
        })
        .expect("a document")
        .to_owned();
    let (code, out, err) = mcpvisor(dir.path(), &["read", &uri]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.trim().is_empty());
    let (code, out, _) = mcpvisor(dir.path(), &["prompts"]);
    assert_eq!(code, 0);
    assert!(out.contains("ev__args-prompt"), "{out}");
    let (code, out, err) = mcpvisor(
        dir.path(),
        &["prompt", "ev__args-prompt", "--args", r#"{"city": "Oslo"}"#],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("user: ") && out.contains("Oslo"), "{out}");
    // A prompt the service does not have: its own refusal (invalid params), exit 2.
    let (code, _, err) = mcpvisor(dir.path(), &["prompt", "ev__nope"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("service 'ev'") && err.contains("nope"),
        "{err}"
    );
    // A service nobody has: no route at all.
    let (code, _, err) = mcpvisor(dir.path(), &["prompt", "nobody__x"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no service offers the prompt 'nobody__x'"),
        "{err}"
    );
}

/// The embedding program's handler answers the servers' requests.
struct Program;

#[allow(deprecated)]
impl mcpvisor_supervisor::ServerRequests for Program {
    fn list_roots(
        &self,
        _service: &mcpvisor_model::ServiceId,
    ) -> mcpvisor_supervisor::Answer<rmcp::model::ListRootsResult> {
        Box::pin(async {
            Ok(serde_json::from_value(json!({"roots": [{"uri": "file:///srv/work"}]})).unwrap())
        })
    }
    fn create_message(
        &self,
        service: &mcpvisor_model::ServiceId,
        _params: rmcp::model::CreateMessageRequestParams,
    ) -> mcpvisor_supervisor::Answer<rmcp::model::CreateMessageResult> {
        let text = format!("sampled for {service}");
        Box::pin(async move {
            Ok(serde_json::from_value(json!({
                "model": "m", "role": "assistant", "content": {"type": "text", "text": text}
            }))
            .unwrap())
        })
    }
    fn create_elicitation(
        &self,
        _service: &mcpvisor_model::ServiceId,
        _params: rmcp::model::ElicitRequestParams,
    ) -> mcpvisor_supervisor::Answer<rmcp::model::ElicitResult> {
        Box::pin(async { Ok(serde_json::from_value(json!({"action": "decline"})).unwrap()) })
    }
}

#[tokio::test]
async fn servers_requests_are_answered_by_the_programs_handler_and_not_offered_without_one() {
    // Without a handler, mcpvisor does not tell the server it may ask: it offers no asking tools.
    let plain = store_with(&[everything("ev")]).await;
    let tools = plain.list_tools().await.unwrap();
    assert!(!tools
        .iter()
        .any(|t| t.name == "ev__trigger-sampling-request"));
    plain.shutdown().await;

    let store = Store::open(StoreOptions::new().server_requests(std::sync::Arc::new(Program)))
        .await
        .unwrap();
    store
        .add_service(everything("ev"), Wait::None)
        .await
        .unwrap();
    store
        .wait_for(&["ev"], ServiceState::Healthy, LONG)
        .await
        .unwrap();
    let out = store
        .call_tool(
            "ev__trigger-sampling-request",
            json!({"prompt": "hi"}).as_object().cloned(),
            None,
        )
        .await
        .unwrap();
    assert!(
        out.result.to_string().contains("sampled for ev"),
        "{}",
        out.result
    );
    let out = store
        .call_tool("ev__trigger-elicitation-request", None, None)
        .await
        .unwrap();
    assert!(
        out.result.to_string().contains("declined"),
        "{}",
        out.result
    );
    let out = store
        .call_tool("ev__get-roots-list", None, None)
        .await
        .unwrap();
    assert!(
        out.result.to_string().contains("file:///srv/work"),
        "{}",
        out.result
    );
    store.shutdown().await;
}

#[tokio::test]
async fn roots_from_the_config_are_answered_without_a_handler_and_a_bad_log_level_is_refused() {
    let mut ev = everything("ev");
    ev["roots"] = json!(["file:///srv/from-config"]);
    ev["log_level"] = json!("warning");
    let store = store_with(&[ev]).await;
    let out = store
        .call_tool("ev__get-roots-list", None, None)
        .await
        .unwrap();
    assert!(
        out.result.to_string().contains("file:///srv/from-config"),
        "{}",
        out.result
    );
    // Nothing else was declared: no sampling tool.
    let tools = store.list_tools().await.unwrap();
    assert!(!tools
        .iter()
        .any(|t| t.name == "ev__trigger-sampling-request"));
    let mut bad = everything("bad");
    bad["log_level"] = json!("loud");
    let err = store.add_service(bad, Wait::None).await.unwrap_err();
    assert!(
        err.to_string().contains("bad") && err.to_string().contains("log_level"),
        "{err}"
    );
    store.shutdown().await;
}

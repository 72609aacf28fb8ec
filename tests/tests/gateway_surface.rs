//! The surface beyond tools through the gateway (issue 12): a real rmcp client over streamable
//! HTTP against the gateway, in front of real server-everything on stdio — capabilities
//! declared as its services offer them, resources, templates, reads, subscriptions and their
//! updates, prompts, completions, and the server's log messages.

use std::sync::Arc;
use std::time::Duration;

use mcpvisor_gateway::{Gateway, HttpOptions};
use mcpvisor_model::ServiceState;
use mcpvisor_supervisor::{Store, StoreOptions, Wait};
use mcpvisor_tests::{deadline, node_server};
use rmcp::model::{
    ArgumentInfo, CallToolRequestParams, CompleteRequestParams, GetPromptRequestParams,
    ReadResourceRequestParams, Reference, SubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, ServiceExt};
use serde_json::json;
use tokio::sync::mpsc;

const LONG: Duration = Duration::from_secs(30);

/// What the client was told, in order.
#[derive(Debug)]
enum Told {
    Updated(String),
    Log(Option<String>, String),
}

#[derive(Clone)]
struct Client {
    told: mpsc::UnboundedSender<Told>,
}

impl ClientHandler for Client {
    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.told.send(Told::Updated(params.uri));
    }

    #[allow(deprecated)]
    async fn on_logging_message(
        &self,
        params: rmcp::model::LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self
            .told
            .send(Told::Log(params.logger, params.data.to_string()));
    }
}

async fn next_told(
    rx: &mut mpsc::UnboundedReceiver<Told>,
    what: &str,
    pred: impl Fn(&Told) -> bool,
) -> Told {
    deadline(LONG, what, async {
        loop {
            let t = rx.recv().await.expect("client gone");
            if pred(&t) {
                return t;
            }
        }
    })
    .await
}

/// server-everything on stdio as service `ev` of a Store opened with `options`, its gateway on
/// a loopback port: the Store, the gateway's `/mcp` URL and what stops the gateway.
async fn everything_behind_a_gateway(
    options: StoreOptions,
) -> (Store, String, tokio_util::sync::CancellationToken, Gateway) {
    everything_named_behind_a_gateway("ev", options).await
}

/// The same with the service named `name`.
async fn everything_named_behind_a_gateway(
    name: &str,
    options: StoreOptions,
) -> (Store, String, tokio_util::sync::CancellationToken, Gateway) {
    mcpvisor_service_actor::install_default_tls_provider();
    let store = Store::open(options).await.unwrap();
    store
        .add_service(
            json!({"name": name, "command": "node", "args": [node_server("server-everything"), "stdio"]}),
            Wait::None,
        )
        .await
        .unwrap();
    store
        .wait_for(&[name], ServiceState::Healthy, LONG)
        .await
        .unwrap();
    let gateway = Gateway::new(store.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = HttpOptions::new(addr);
    let cancel = options.cancel.clone();
    let g = gateway.clone();
    tokio::spawn(async move { g.serve_http(listener, options).await });
    (store, format!("http://{addr}/mcp"), cancel, gateway)
}

#[tokio::test]
async fn an_http_client_gets_resources_prompts_completions_updates_and_logs_through_the_gateway() {
    let (store, url, cancel, _) = everything_behind_a_gateway(StoreOptions::new()).await;

    let (tx, mut told) = mpsc::unbounded_channel();
    let client: RunningService<RoleClient, Client> = Client { told: tx }
        .serve(StreamableHttpClientTransport::from_uri(url))
        .await
        .expect("connect to the gateway");
    let caps = client.peer_info().unwrap().capabilities.clone();
    assert!(
        caps.resources.as_ref().and_then(|r| r.subscribe) == Some(true),
        "{caps:?}"
    );
    assert!(caps.prompts.is_some() && caps.completions.is_some() && caps.logging.is_some());

    // Resources and templates; a read by the listed URI and by a template-made one.
    let resources = client.peer().list_all_resources().await.unwrap();
    assert!(resources.len() >= 5, "{resources:?}");
    let doc = resources
        .iter()
        .find(|r| r.uri.contains("/static/document/"))
        .expect("a document");
    let read = client
        .peer()
        .read_resource(ReadResourceRequestParams::new(doc.uri.clone()))
        .await
        .unwrap();
    assert!(!read.contents.is_empty());
    let templates = client.peer().list_all_resource_templates().await.unwrap();
    assert!(templates
        .iter()
        .any(|t| t.uri_template.contains("{resourceId}")));
    client
        .peer()
        .read_resource(ReadResourceRequestParams::new(
            "demo://resource/dynamic/text/3",
        ))
        .await
        .unwrap();
    let missing = client
        .peer()
        .read_resource(ReadResourceRequestParams::new("nothing://here"))
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("nothing://here"), "{missing}");

    // Prompts by their namespaced names, and completions routed by prompt.
    let prompts = client.peer().list_all_prompts().await.unwrap();
    assert!(
        prompts.iter().any(|p| p.name == "ev__args-prompt"),
        "{prompts:?}"
    );
    let mut get = GetPromptRequestParams::new("ev__args-prompt");
    get.arguments = json!({"city": "Oslo"}).as_object().cloned();
    let got = client.peer().get_prompt(get).await.unwrap();
    assert!(serde_json::to_string(&got.messages)
        .unwrap()
        .contains("Oslo"));
    let done = client
        .peer()
        .complete(CompleteRequestParams::new(
            Reference::for_prompt("ev__completable-prompt"),
            ArgumentInfo::new("department", "Sa"),
        ))
        .await
        .unwrap();
    assert_eq!(done.completion.values, ["Sales"]);

    // A subscription: the server's updates reach the client under the URI it used.
    #[allow(deprecated)]
    client
        .peer()
        .subscribe(SubscribeRequestParams::new(doc.uri.clone()))
        .await
        .unwrap();
    client
        .peer()
        .call_tool(CallToolRequestParams::new("ev__toggle-subscriber-updates"))
        .await
        .unwrap();
    let t = next_told(&mut told, "a resource update", |t| {
        matches!(t, Told::Updated(_))
    })
    .await;
    assert!(matches!(&t, Told::Updated(u) if *u == doc.uri), "{t:?}");

    // The server's log messages, named by service.
    client
        .peer()
        .call_tool(CallToolRequestParams::new("ev__toggle-simulated-logging"))
        .await
        .unwrap();
    let t = next_told(&mut told, "a log message", |t| matches!(t, Told::Log(..))).await;
    assert!(
        matches!(&t, Told::Log(Some(l), data) if l.starts_with("ev") && data.contains("message")),
        "{t:?}"
    );

    client.cancel().await.unwrap();
    cancel.cancel();
    store.shutdown().await;
}

/// A client that answers servers' requests (declares sampling, elicitation and roots), or
/// declares none (`answers: false`).
#[derive(Clone)]
struct Answering {
    answers: bool,
    /// How many elicitations it was asked.
    asked: Arc<std::sync::atomic::AtomicUsize>,
    /// Told of each progress notification.
    progress: Option<tokio::sync::mpsc::UnboundedSender<()>>,
}

impl Answering {
    fn new(answers: bool) -> Answering {
        Answering {
            answers,
            asked: Arc::default(),
            progress: None,
        }
    }
}

#[allow(deprecated)]
impl ClientHandler for Answering {
    async fn create_message(
        &self,
        _params: rmcp::model::CreateMessageRequestParams,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::CreateMessageResult, rmcp::ErrorData> {
        Ok(serde_json::from_value(json!({
            "model": "test-model", "role": "assistant",
            "content": {"type": "text", "text": "the model says hi"}
        }))
        .unwrap())
    }

    async fn create_elicitation(
        &self,
        _request: rmcp::model::ElicitRequestParams,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::ElicitResult, rmcp::ErrorData> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(
            serde_json::from_value(json!({"action": "accept", "content": {"name": "Ada"}}))
                .unwrap(),
        )
    }

    async fn list_roots(
        &self,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::ListRootsResult, rmcp::ErrorData> {
        Ok(serde_json::from_value(
            json!({"roots": [{"uri": "file:///client-root", "name": "root"}]}),
        )
        .unwrap())
    }

    async fn on_progress(
        &self,
        _params: rmcp::model::ProgressNotificationParam,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) {
        if let Some(tx) = &self.progress {
            let _ = tx.send(());
        }
    }

    fn get_info(&self) -> rmcp::model::ClientInfo {
        let mut info = rmcp::model::ClientInfo::default();
        if self.answers {
            info.capabilities =
                serde_json::from_value(json!({"roots": {}, "sampling": {}, "elicitation": {}}))
                    .unwrap();
        }
        info
    }
}

fn result_text(r: &rmcp::model::CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn servers_requests_go_to_the_calling_client_only_if_it_declared_the_capability() {
    let (store, url, cancel, gateway) =
        everything_behind_a_gateway(StoreOptions::new().relay_server_requests()).await;
    let able = Answering::new(true)
        .serve(StreamableHttpClientTransport::from_uri(url.clone()))
        .await
        .unwrap();
    let unable = Answering::new(false)
        .serve(StreamableHttpClientTransport::from_uri(url))
        .await
        .unwrap();

    // mcpvisor told the server it may ask: the server offers its asking tools.
    let tools = mcpvisor_tests::tool_names(able.peer()).await;
    for t in [
        "ev__trigger-sampling-request",
        "ev__trigger-elicitation-request",
        "ev__get-roots-list",
    ] {
        assert!(tools.contains(&t.to_owned()), "{t} in {tools:?}");
    }

    let sample = |who: &RunningService<RoleClient, Answering>| {
        let mut p = CallToolRequestParams::new("ev__trigger-sampling-request");
        p.arguments = json!({"prompt": "hello"}).as_object().cloned();
        let peer = who.peer().clone();
        async move { peer.call_tool(p).await }
    };
    let got = sample(&able).await.unwrap();
    assert!(result_text(&got).contains("the model says hi"), "{got:?}");
    // The client that did not declare sampling: the server is refused, saying why.
    let refused = sample(&unable).await;
    let said = match &refused {
        Ok(r) => result_text(r),
        Err(e) => e.to_string(),
    };
    assert!(said.contains("did not declare sampling"), "{said}");

    let got = able
        .peer()
        .call_tool(CallToolRequestParams::new(
            "ev__trigger-elicitation-request",
        ))
        .await
        .unwrap();
    assert!(result_text(&got).contains("Ada"), "{got:?}");

    let got = able
        .peer()
        .call_tool(CallToolRequestParams::new("ev__get-roots-list"))
        .await
        .unwrap();
    assert!(result_text(&got).contains("file:///client-root"), "{got:?}");
    // Each of those calls was answered without rmcp's session machinery: the server's
    // requests reach the calling client all the same.
    assert_eq!(gateway.relayed_calls(), 4);

    able.cancel().await.unwrap();
    unable.cancel().await.unwrap();
    cancel.cancel();
    store.shutdown().await;
}

/// Two clients' calls to one server in flight: a request the server makes meanwhile cannot be
/// told to be either's (a stdio server's request names no call), so it is refused saying
/// why — never sent to the other client. Once only one client's call is in flight, it goes to
/// that client.
#[tokio::test]
async fn a_servers_request_while_two_clients_call_it_is_sent_to_neither() {
    use std::sync::atomic::Ordering::SeqCst;
    let (store, url, cancel, _gateway) =
        everything_behind_a_gateway(StoreOptions::new().relay_server_requests()).await;
    let (tx, mut a_progress) = tokio::sync::mpsc::unbounded_channel();
    let mut a_handler = Answering::new(true);
    a_handler.progress = Some(tx);
    let a_asked = a_handler.asked.clone();
    let a = a_handler
        .serve(StreamableHttpClientTransport::from_uri(url.clone()))
        .await
        .unwrap();
    let b_handler = Answering::new(true);
    let b_asked = b_handler.asked.clone();
    let b = b_handler
        .serve(StreamableHttpClientTransport::from_uri(url))
        .await
        .unwrap();
    // a's long call is in flight (its first progress came).
    let long = CallToolRequestParams::new("ev__trigger-long-running-operation").with_arguments(
        json!({"duration": 3, "steps": 6})
            .as_object()
            .cloned()
            .unwrap(),
    );
    let request =
        rmcp::model::ClientRequest::CallToolRequest(rmcp::model::CallToolRequest::new(long));
    let in_flight = a
        .send_cancellable_request(request, rmcp::service::PeerRequestOptions::no_options())
        .await
        .unwrap();
    deadline(LONG, "a's call in flight", a_progress.recv()).await;
    let elicit = || CallToolRequestParams::new("ev__trigger-elicitation-request");
    let refused = b.peer().call_tool(elicit()).await;
    let said = match &refused {
        Ok(r) => result_text(r),
        Err(e) => e.to_string(),
    };
    assert!(said.contains("cannot be told"), "{said}");
    assert_eq!((a_asked.load(SeqCst), b_asked.load(SeqCst)), (0, 0));
    in_flight.await_response().await.unwrap();
    // Only b's call now: b is asked, a is not.
    let got = b.peer().call_tool(elicit()).await.unwrap();
    assert!(result_text(&got).contains("Ada"), "{got:?}");
    assert_eq!((a_asked.load(SeqCst), b_asked.load(SeqCst)), (0, 1));
    a.cancel().await.unwrap();
    b.cancel().await.unwrap();
    cancel.cancel();
    store.shutdown().await;
}

#[tokio::test]
async fn prompt_names_keep_within_the_clients_budget_and_still_resolve() {
    let service = "a-rather-long-service-name-for-the-budget";
    let (store, url, cancel, _) =
        everything_named_behind_a_gateway(service, StoreOptions::new()).await;
    let client = ().serve(StreamableHttpClientTransport::from_uri(url)).await.unwrap();
    let prompts = client.peer().list_all_prompts().await.unwrap();
    // 64 characters minus the default 15 left to the client's own prefix.
    assert!(prompts.iter().all(|p| p.name.len() <= 49), "{prompts:?}");
    let args = prompts
        .iter()
        .find(|p| {
            p.description
                .as_deref()
                .is_some_and(|d| d.contains("two arguments"))
        })
        .expect("the args prompt");
    assert_ne!(args.name, format!("{service}__args-prompt"), "shortened");
    let mut get = GetPromptRequestParams::new(args.name.clone());
    get.arguments = json!({"city": "Oslo"}).as_object().cloned();
    let got = client.peer().get_prompt(get).await.unwrap();
    assert!(serde_json::to_string(&got.messages)
        .unwrap()
        .contains("Oslo"));
    client.cancel().await.unwrap();
    cancel.cancel();
    store.shutdown().await;
}

#[tokio::test]
async fn one_clients_unsubscribe_leaves_another_clients_subscription_to_the_same_resource() {
    let (store, url, cancel, _) = everything_behind_a_gateway(StoreOptions::new()).await;
    let connect = |url: String| async move {
        let (tx, rx) = mpsc::unbounded_channel();
        let c: RunningService<RoleClient, Client> = Client { told: tx }
            .serve(StreamableHttpClientTransport::from_uri(url))
            .await
            .expect("connect to the gateway");
        (c, rx)
    };
    let (a, _a_told) = connect(url.clone()).await;
    let (b, mut b_told) = connect(url).await;
    let uri = a
        .peer()
        .list_all_resources()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.uri.contains("/static/document/"))
        .expect("a document")
        .uri;
    // `b` subscribes first: an unsubscribe that took "the first subscriber" would take b's.
    #[allow(deprecated)]
    for c in [&b, &a] {
        c.peer()
            .subscribe(SubscribeRequestParams::new(uri.clone()))
            .await
            .unwrap();
    }
    // `a` leaves; `b` keeps its subscription and the server's.
    #[allow(deprecated)]
    a.peer()
        .unsubscribe(rmcp::model::UnsubscribeRequestParams::new(uri.clone()))
        .await
        .unwrap();
    b.peer()
        .call_tool(CallToolRequestParams::new("ev__toggle-subscriber-updates"))
        .await
        .unwrap();
    let t = next_told(&mut b_told, "an update for b", |t| {
        matches!(t, Told::Updated(_))
    })
    .await;
    assert!(matches!(&t, Told::Updated(u) if *u == uri), "{t:?}");
    a.cancel().await.unwrap();
    b.cancel().await.unwrap();
    cancel.cancel();
    store.shutdown().await;
}

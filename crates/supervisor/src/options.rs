//! How to open a [`crate::Store`], how long to wait after adding, what a wait reports, and
//! the input forms `add_service` takes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mcpvisor_model::env::{Env, ProcessEnv};
use mcpvisor_model::{ConfigError, ConfigErrors, ServicesConfig};
use serde_json::Value;

use crate::error::StoreError;

/// How long `add_service` waits after registering.
/// ```no_run
/// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
/// use mcpvisor_supervisor::Wait;
/// use serde_json::json;
/// let time = json!({"name": "time", "command": "uvx", "args": ["mcp-server-time"]});
/// store.add_service(time, Wait::For(std::time::Duration::from_secs(10))).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wait {
    /// Return after phase 1 (registered, `starting`).
    #[default]
    None,
    /// Wait up to this long for the new services to be up (or to fail).
    For(Duration),
    /// Wait up to each service's `timeouts.connect`.
    Auto,
    /// Wait until each new service's outcome is known — up, failed at least once, or held
    /// back by a dependency that settled without coming up — up to the longest
    /// `timeouts.connect` among them (see [`Store::wait_settled`]).
    Settled,
}

/// How far a [`Store::wait_settled`] got: `up` of `total` are up, `settled` have a known
/// outcome, `pending` (names) do not yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Services waited for.
    pub total: usize,
    /// Of them, up (`healthy`/`warning`).
    pub up: usize,
    /// Of them, with a known outcome.
    pub settled: usize,
    /// Those without one yet, by name.
    pub pending: Vec<String>,
}

impl Progress {
    /// "2/3 healthy (waiting for git)".
    pub fn line(&self) -> String {
        let mut s = format!("{}/{} healthy", self.up, self.total);
        if !self.pending.is_empty() {
            s.push_str(&format!(" (waiting for {})", self.pending.join(", ")));
        }
        s
    }
}

/// How to open a [`Store`].
#[derive(Clone)]
pub struct StoreOptions {
    /// Config file to load and keep up to date; `None` keeps the config in memory only.
    pub config_path: Option<PathBuf>,
    /// State dir for the state file (last-known tools, process groups for reaping); `None`
    /// keeps no state file.
    pub state_dir: Option<PathBuf>,
    /// Initial services when there is no config file (or it does not exist yet).
    pub config: Option<ServicesConfig>,
    /// Where `${VAR}`s come from.
    pub env: Arc<dyn Env + Send + Sync>,
    /// Start services at open (default true).
    pub autostart: bool,
    /// Who answers the servers' own requests (`roots/list`, `sampling/createMessage`,
    /// `elicitation/create`); `None`: nobody yet (see [`StoreOptions::relay_server_requests`]).
    pub server_requests: Option<Arc<dyn mcpvisor_service_actor::relay::ServerRequests>>,
    /// Declare `roots`, `sampling` and `elicitation` to servers from the start, for a handler
    /// registered later ([`crate::Store::set_server_requests`]: the gateway is one).
    pub relay_server_requests: bool,
    /// Where remote services' OAuth tokens are (`mcpvisor login`); default `<state dir>/oauth`.
    pub token_dir: Option<PathBuf>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            config_path: None,
            state_dir: None,
            config: None,
            env: Arc::new(ProcessEnv),
            autostart: true,
            server_requests: None,
            relay_server_requests: false,
            token_dir: None,
        }
    }
}

impl StoreOptions {
    /// In-memory options with no file.
    /// ```
    /// use mcpvisor_supervisor::StoreOptions;
    /// let options = StoreOptions::new();
    /// assert!(options.config_path.is_none() && options.state_dir.is_none() && options.autostart);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
    /// Loads and persists `path`.
    /// ```
    /// use mcpvisor_supervisor::StoreOptions;
    /// let options = StoreOptions::new().config_file("mcp.json");
    /// assert_eq!(options.config_path.as_deref(), Some(std::path::Path::new("mcp.json")));
    /// ```
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_path = Some(path.into());
        self
    }
    /// Uses `dir` for the state file.
    /// ```
    /// use mcpvisor_supervisor::StoreOptions;
    /// let options = StoreOptions::new().state_dir("/var/lib/mcpvisor");
    /// assert!(options.state_dir.is_some());
    /// ```
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }
    /// Starts from this config (when no file is given or it does not exist).
    /// ```
    /// use mcpvisor_supervisor::{model, StoreOptions};
    /// let text = r#"{"mcpServers": {"time": {"command": "uvx", "args": ["mcp-server-time"]}}}"#;
    /// let config = model::parse_str(text, &model::env::ProcessEnv).expect("valid config");
    /// let options = StoreOptions::new().with_config(config);
    /// assert_eq!(options.config.map(|c| c.services.len()), Some(1));
    /// ```
    pub fn with_config(mut self, config: ServicesConfig) -> Self {
        self.config = Some(config);
        self
    }
    /// Answers the servers' own requests with `handler` (servers are told they may ask).
    /// ```no_run
    /// use std::sync::Arc;
    /// use mcpvisor_supervisor::{model::ServiceId, Answer, ServerRequests, StoreOptions};
    /// use rmcp::model::*;
    /// struct Workspace;
    /// impl ServerRequests for Workspace {
    ///     fn list_roots(&self, _: &ServiceId) -> Answer<ListRootsResult> {
    ///         Box::pin(async { Ok(ListRootsResult::new(vec![Root::new("file:///srv/project")])) })
    ///     }
    ///     fn create_message(&self, s: &ServiceId, _: CreateMessageRequestParams) -> Answer<CreateMessageResult> {
    ///         let e = rmcp::ErrorData::invalid_request(format!("{s}: no model here"), None);
    ///         Box::pin(async move { Err(e) })
    ///     }
    ///     fn create_elicitation(&self, _: &ServiceId, _: ElicitRequestParams) -> Answer<ElicitResult> {
    ///         Box::pin(async { Ok(ElicitResult::new(ElicitationAction::Decline)) })
    ///     }
    /// }
    /// let options = StoreOptions::new().server_requests(Arc::new(Workspace));
    /// # let _ = options;
    /// ```
    pub fn server_requests(
        mut self,
        handler: Arc<dyn mcpvisor_service_actor::relay::ServerRequests>,
    ) -> Self {
        self.server_requests = Some(handler);
        self
    }

    /// Tells servers from the start that their requests may be answered, by a handler set
    /// later with [`crate::Store::set_server_requests`] (until then they get an error).
    /// ```
    /// use mcpvisor_supervisor::StoreOptions;
    /// let options = StoreOptions::new().relay_server_requests();
    /// assert!(options.relay_server_requests);
    /// ```
    pub fn relay_server_requests(mut self) -> Self {
        self.relay_server_requests = true;
        self
    }

    /// Uses this environment for `${VAR}` expansion.
    /// ```
    /// use mcpvisor_supervisor::{model::env::MapEnv, StoreOptions};
    /// // `${TOKEN}` in the config now expands from this map, not from the process environment.
    /// let options = StoreOptions::new().env(MapEnv::from_pairs([("TOKEN", "secret")]));
    /// # let _ = options;
    /// ```
    pub fn env(mut self, env: impl Env + Send + Sync + 'static) -> Self {
        self.env = Arc::new(env);
        self
    }
}

/// What `add_service` accepts.
/// ```
/// use mcpvisor_supervisor::ServiceInput;
/// use serde_json::json;
/// let _value: ServiceInput = json!({"name": "time", "command": "uvx"}).into();
/// let _text: ServiceInput = r#"{"mcpServers": {"time": {"command": "uvx"}}}"#.into();
/// let _file: ServiceInput = "services.json".into(); // read when added
/// ```
#[derive(Debug, Clone)]
pub enum ServiceInput {
    /// A JSON value of any accepted form.
    Json(Value),
    /// JSON text, or a path to a file holding JSON.
    Text(String),
}

impl ServiceInput {
    pub(crate) fn into_value(self) -> Result<Value, StoreError> {
        match self {
            ServiceInput::Json(v) => Ok(v),
            ServiceInput::Text(t) => {
                let trimmed = t.trim_start();
                let text = if trimmed.starts_with('{') || trimmed.starts_with('[') {
                    t
                } else {
                    std::fs::read_to_string(&t).map_err(|e| {
                        StoreError::Config(ConfigErrors(vec![ConfigError::Io {
                            path: t.clone(),
                            message: e.to_string(),
                        }]))
                    })?
                };
                serde_json::from_str(&text).map_err(|e| {
                    StoreError::Config(ConfigErrors(vec![ConfigError::Syntax {
                        line: e.line(),
                        column: e.column(),
                        message: e.to_string(),
                    }]))
                })
            }
        }
    }
}

impl From<Value> for ServiceInput {
    fn from(v: Value) -> Self {
        ServiceInput::Json(v)
    }
}

impl From<&str> for ServiceInput {
    fn from(s: &str) -> Self {
        ServiceInput::Text(s.to_owned())
    }
}

impl From<String> for ServiceInput {
    fn from(s: String) -> Self {
        ServiceInput::Text(s)
    }
}

//! The errors of the Store API. Each names the service (and field, through the config error)
//! and says what to do.

use mcpvisor_model::{ConfigErrors, ServiceState};
use mcpvisor_registry_actor::LookupError;
use mcpvisor_service_actor::CallError;

/// What can go wrong in a [`crate::Store`] call.
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use mcpvisor_supervisor::{Store, StoreError, StoreOptions, Wait};
/// use serde_json::json;
/// let store = Store::open(StoreOptions::new()).await.unwrap();
/// // Both `command` and `url`: refused, naming the service and the field; nothing registered.
/// let bad = json!({"name": "api", "command": "x", "url": "http://127.0.0.1:1/mcp"});
/// match store.add_service(bad, Wait::None).await {
///     Err(StoreError::Config(errors)) => assert!(errors.to_string().contains("api")),
///     other => panic!("expected a config error, got {other:?}"),
/// }
/// assert!(store.list_services().await.unwrap().is_empty());
/// store.shutdown().await;
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The config (or the service given) is invalid; nothing was changed.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// The config file could not be loaded.
    #[error("cannot load {path}: {message}")]
    Load {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// A service of that name already exists.
    #[error("service '{0}' already exists; use update_service to change it")]
    AlreadyExists(String),
    /// No such service or tool.
    #[error("{0}")]
    Lookup(#[from] LookupError),
    /// Other services depend on the one to remove.
    #[error("service '{service}' cannot be removed: it is a dependency of {}; remove them or change their depends_on first", dependents.join(", "))]
    InUse {
        /// The service.
        service: String,
        /// Who depends on it.
        dependents: Vec<String>,
    },
    /// A tool call failed.
    #[error("{0}")]
    Call(#[from] CallError),
    /// `wait_for` timed out.
    #[error("timed out waiting for {}", waiting.iter().map(|(n, s)| format!("'{n}' (still {s})")).collect::<Vec<_>>().join(", "))]
    WaitTimeout {
        /// The services not there yet with their states.
        waiting: Vec<(String, ServiceState)>,
    },
    /// Another Store (in this or another process) owns the state dir.
    #[error("the state dir {dir} is in use by another mcpvisor{}; stop it, or use another state dir", owner.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    StateDirInUse {
        /// The state dir.
        dir: String,
        /// The owner's pid, when it wrote one.
        owner: Option<u32>,
    },
    /// No service offers that resource (or resource template).
    #[error("no service offers the resource '{uri}'{}", hint(suggestions))]
    UnknownResource {
        /// The URI asked for.
        uri: String,
        /// Close URIs that are offered.
        suggestions: Vec<String>,
    },
    /// No service offers that prompt.
    #[error("no service offers the prompt '{name}'{}", hint(suggestions))]
    UnknownPrompt {
        /// The name asked for.
        name: String,
        /// Close names that are offered.
        suggestions: Vec<String>,
    },
    /// The supervisor is not running (shut down, or an actor could not be reached).
    #[error("the supervisor is not running ({0})")]
    NotRunning(String),
}

fn hint(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", suggestions.join(", "))
    }
}

impl StoreError {
    pub(crate) fn gone(e: impl std::fmt::Display) -> Self {
        StoreError::NotRunning(e.to_string())
    }
}

//! What every endpoint shares: the Store, the gateway config, the connected clients, and the
//! view of the fleet each endpoint offers (names per DESIGN §13, filters, down services).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mcpvisor_model::{DownTools, GatewayConfig, ServiceState, ToolFilter};
use mcpvisor_supervisor::{Store, StoreError, ToolEntry};
use rmcp::model::Tool;
use rmcp::service::{Peer, RoleServer};

use crate::names::{expose, Naming, Offer};

/// Which view of the fleet a client gets: `/mcp` (the Store's own services) or
/// `/agents/<id>/mcp` (one agent's).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// The Store's own services.
    Default,
    /// One agent's services, by their local names.
    Agent(String),
}

impl Endpoint {
    /// The key of its filter in `gateway.endpoints`.
    pub fn key(&self) -> &str {
        match self {
            Endpoint::Default => "default",
            Endpoint::Agent(id) => id,
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Default => f.write_str("/mcp"),
            Endpoint::Agent(id) => write!(f, "/agents/{id}/mcp"),
        }
    }
}

/// One tool as an endpoint offers it.
#[derive(Debug, Clone)]
pub struct Offered {
    /// The name the client sees and calls.
    pub exposed: String,
    /// The Store's entry (its `name` is what the Store calls).
    pub entry: ToolEntry,
    /// Whether its service is up now (a call is made at once).
    pub up: bool,
    /// Whether `tools/list` shows it under `down_tools: "hide"`: its service is up, or on its
    /// way back by itself (see [`on_its_way_back`]).
    pub listed: bool,
}

/// Where a call to an offered tool goes: what the gateway keeps of an [`Offered`] for one
/// call (not its schema).
#[derive(Debug, Clone)]
pub(crate) struct Routed {
    /// The Store's name for the tool.
    pub(crate) name: String,
    /// The service offering it.
    pub(crate) service: mcpvisor_model::ServiceId,
    /// Whether its service was up when the view was made.
    pub(crate) up: bool,
}

impl From<&Offered> for Routed {
    fn from(o: &Offered) -> Routed {
        Routed {
            name: o.entry.name.clone(),
            service: o.entry.service.clone(),
            up: o.up,
        }
    }
}

/// An endpoint's tools, sorted by exposed name; `listed` are those `tools/list` shows.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Every tool the endpoint can route (a hidden down service's included).
    pub all: Vec<Offered>,
    /// Exposed name → position in `all`.
    index: HashMap<String, usize>,
    /// Which tools `tools/list` shows, by position in `all`, when not every listed one: the
    /// pinned ones under `tools: "search"`, those a `max_tools` kept. `None`: all.
    shown: Option<Vec<bool>>,
    /// Whether tools are found by `search_tools` (`"search"`, `"dynamic"`).
    searched: bool,
    /// The search index, made on the first search of this view.
    found: std::sync::OnceLock<Arc<crate::search::Index>>,
}

impl View {
    /// The tools `tools/list` shows (under `tools: "search"`, the pinned ones; the meta-tools
    /// come beside them).
    pub fn listed(&self, down: DownTools) -> impl Iterator<Item = &Offered> {
        let (mask, searched) = (self.shown.as_ref(), self.searched);
        self.all.iter().enumerate().filter_map(move |(i, o)| {
            let shown = (o.listed || down == DownTools::Keep)
                && mask.is_none_or(|m| m.get(i).copied().unwrap_or(false))
                && !(searched && crate::search::is_meta(&o.exposed));
            shown.then_some(o)
        })
    }

    /// Whether the endpoint's tools are found by `search_tools` rather than listed.
    pub fn searched(&self) -> bool {
        self.searched
    }

    /// Under `max_tools`, when it cut the list: (listed, of how many).
    pub fn cut(&self, down: DownTools) -> Option<(usize, usize)> {
        (!self.searched && self.shown.is_some()).then(|| {
            let of = self
                .all
                .iter()
                .filter(|o| o.listed || down == DownTools::Keep)
                .count();
            (self.listed(down).count(), of)
        })
    }

    /// The index `search_tools` searches: what `tools/list` would show under `tools: "all"`.
    pub(crate) fn search_index(&self, down: DownTools) -> Arc<crate::search::Index> {
        self.found
            .get_or_init(|| {
                // A tool exposed under a meta-tool's name (a bare name) cannot be called by it:
                // it is not found either.
                crate::search::index(self.all.iter().enumerate().filter(|(_, o)| {
                    (o.listed || down == DownTools::Keep) && !crate::search::is_meta(&o.exposed)
                }))
            })
            .clone()
    }

    /// The tool a client calls by `name` (not a meta-tool's name under `tools: "search"`: those
    /// are the gateway's own).
    pub fn find(&self, name: &str) -> Option<&Offered> {
        if self.searched() && crate::search::is_meta(name) {
            return None;
        }
        self.index.get(name).and_then(|i| self.all.get(*i))
    }
}

/// A connected client: its endpoint, its peer, the lowest log severity it wants.
pub(crate) type Client = (Endpoint, Peer<RoleServer>, Arc<std::sync::atomic::AtomicU8>);

/// Shared by every session of every endpoint.
pub(crate) struct Core {
    pub(crate) store: Store,
    pub(crate) config: GatewayConfig,
    pub(crate) naming: Naming,
    /// Connected clients, to tell of list changes, with the lowest log severity each wants
    /// (`logging/setLevel`; 0 until set).
    pub(crate) clients: Mutex<Vec<Client>>,
    /// The names each endpoint listed last (to tell only clients whose view changed).
    pub(crate) last_listed: Mutex<HashMap<Endpoint, Vec<String>>>,
    /// Each endpoint's last computed view.
    views: RwLock<HashMap<Endpoint, Arc<View>>>,
    /// What the services offer beyond tools, as far as seen (`None` before any service
    /// connected: then everything mcpvisor can relay is declared).
    pub(crate) offered: RwLock<Option<crate::surface::Offered>>,
    /// Resource subscriptions of the clients.
    pub(crate) subscribers: Mutex<Vec<crate::surface::Subscriber>>,
    /// 2026-07-28 clients' calls parked for their input (`crate::bridge`).
    pub(crate) bridges: Arc<crate::bridge::Bridges>,
    /// Open `subscriptions/listen` streams of 2026-07-28 clients.
    pub(crate) listeners: Mutex<Vec<Arc<crate::listen::Listener>>>,
    /// Which client calls which service now (servers' requests go to that client).
    pub(crate) callers: Arc<crate::relay::Callers>,
    /// Exposed prompt name (per endpoint) → the Store's (`service__prompt`), from the last
    /// `prompts/list`.
    pub(crate) prompt_names: Mutex<HashMap<(Endpoint, String), String>>,
    /// Byte-stream clients' tool calls relayed as JSON so far (`crate::fast`).
    pub(crate) relayed: std::sync::atomic::AtomicU64,
    /// The fleet settled once since the gateway started ([`Core::started`]).
    settled: std::sync::atomic::AtomicBool,
}

impl Core {
    pub(crate) fn new(store: Store, separator: &str, config: GatewayConfig) -> Core {
        Core {
            naming: Naming::new(separator, &config),
            store,
            config,
            clients: Mutex::new(Vec::new()),
            last_listed: Mutex::new(HashMap::new()),
            views: RwLock::new(HashMap::new()),
            offered: RwLock::new(None),
            subscribers: Mutex::new(Vec::new()),
            listeners: Mutex::new(Vec::new()),
            bridges: Arc::new(crate::bridge::Bridges::new()),
            callers: Arc::default(),
            prompt_names: Mutex::new(HashMap::new()),
            relayed: Default::default(),
            settled: Default::default(),
        }
    }

    /// The Store in an endpoint's scope.
    pub(crate) fn scoped(&self, endpoint: &Endpoint) -> Result<Store, StoreError> {
        match endpoint {
            Endpoint::Default => Ok(self.store.clone()),
            Endpoint::Agent(id) => self.store.for_agent(id),
        }
    }

    /// Whether the endpoint adds the tools a session's search found to its list
    /// (`tools: "dynamic"`).
    pub(crate) fn dynamic(&self, endpoint: &Endpoint) -> bool {
        self.filter(endpoint)
            .is_some_and(|f| f.mode == mcpvisor_model::ToolsMode::Dynamic)
    }

    fn filter(&self, endpoint: &Endpoint) -> Option<&ToolFilter> {
        self.config.endpoints.get(endpoint.key())
    }

    /// The endpoint's view now (and cached for calls).
    pub(crate) async fn view(&self, endpoint: &Endpoint) -> Result<Arc<View>, StoreError> {
        let store = self.scoped(endpoint)?;
        let (tools, services) = tokio::try_join!(store.list_tools(), store.list_services())?;
        let up: HashMap<String, (bool, bool)> = services
            .iter()
            .map(|s| {
                let up = callable(s);
                (s.name.clone(), (up, up || on_its_way_back(s.state)))
            })
            .collect();
        let filter = self.filter(endpoint);
        let tools: Vec<ToolEntry> = tools
            .into_iter()
            .filter(|t| filter.is_none_or(|f| f.admits(&t.name)))
            .collect();
        let offers: Vec<Offer> = tools
            .iter()
            .map(|t| Offer {
                service: t.service.name.to_string(),
                tool: t.tool.name.clone(),
            })
            .collect();
        let names = expose(&self.naming, &offers);
        let mut all: Vec<Offered> = tools
            .into_iter()
            .zip(names)
            .map(|(entry, exposed)| {
                let (up, listed) = up
                    .get(entry.service.name.as_str())
                    .copied()
                    .unwrap_or((false, false));
                Offered {
                    up,
                    listed,
                    exposed,
                    entry,
                }
            })
            .collect();
        all.sort_by(|a, b| a.exposed.cmp(&b.exposed));
        let index = all
            .iter()
            .enumerate()
            .map(|(i, o)| (o.exposed.clone(), i))
            .collect();
        let searched = filter.is_some_and(|f| f.mode.searched());
        let shown = match filter {
            Some(f) if f.mode.searched() => Some(all.iter().map(|o| f.pins(&o.exposed)).collect()),
            // `max_tools`: the shown ones, marked the same way.
            Some(f) => f.max_tools.and_then(|max| {
                let listed = |o: &Offered| o.listed || self.config.down_tools == DownTools::Keep;
                (all.iter().filter(|o| listed(o)).count() > max)
                    .then(|| crate::search::cut(&all, max, listed))
            }),
            None => None,
        };
        let view = Arc::new(View {
            all,
            index,
            shown,
            searched,
            found: Default::default(),
        });
        self.views
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(endpoint.clone(), view.clone());
        Ok(view)
    }

    /// The endpoint's view as last computed (calls use it: no actor round trip per call); the
    /// event follower refreshes it on every change.
    pub(crate) fn cached(&self, endpoint: &Endpoint) -> Option<Arc<View>> {
        self.views
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(endpoint)
            .cloned()
    }

    /// [`cached`](Self::cached), computed now if there is none.
    pub(crate) async fn cached_view(&self, endpoint: &Endpoint) -> Result<Arc<View>, StoreError> {
        match self.cached(endpoint) {
            Some(v) => Ok(v),
            None => self.view(endpoint).await,
        }
    }

    /// Endpoints whose view is cached.
    pub(crate) fn cached_endpoints(&self) -> Vec<Endpoint> {
        self.views
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// The names `tools/list` shows for a view, remembered as what the endpoint's clients saw.
    pub(crate) fn remember(&self, endpoint: &Endpoint, view: &View) -> bool {
        let names: Vec<String> = view
            .listed(self.config.down_tools)
            .map(|o| o.exposed.clone())
            .collect();
        let mut last = self.last_listed.lock().unwrap_or_else(|p| p.into_inner());
        let changed = last.get(endpoint) != Some(&names);
        last.insert(endpoint.clone(), names);
        changed
    }

    /// The Store's name of the prompt a client of `endpoint` calls `name` (as last listed;
    /// else the name itself, which the Store resolves).
    pub(crate) fn prompt_name(&self, endpoint: &Endpoint, name: &str) -> String {
        self.prompt_names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(endpoint.clone(), name.to_owned()))
            .cloned()
            .unwrap_or_else(|| name.to_owned())
    }

    /// How long a call waits for a service that is coming back.
    pub(crate) fn hold(&self) -> Duration {
        self.config.hold
    }

    /// Returns once the fleet has settled since the gateway started — every eager service
    /// up, or failed at least once — or after `gateway.startup_wait`: a client's first list
    /// never shows a fleet still starting (in every transport and era; waited for once).
    pub(crate) async fn started(&self) {
        use std::sync::atomic::Ordering;
        if self.settled.load(Ordering::Acquire) {
            return;
        }
        let wait = self.config.startup_wait;
        let _ = self
            .store
            .all_scopes()
            .wait_settled(None, false, wait, |_, _| {})
            .await;
        self.settled.store(true, Ordering::Release);
    }
}

/// The MCP tool a client sees for an offered one: the server's own tool object (title,
/// annotations, output schema) under the exposed name.
pub(crate) fn tool_of(o: &Offered) -> Option<Tool> {
    let t = &o.entry.tool;
    let mut v = match &t.raw {
        serde_json::Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    v.insert("name".into(), o.exposed.clone().into());
    if let Some(d) = &t.description {
        v.insert("description".into(), d.clone().into());
    }
    let schema = if t.input_schema.is_empty() {
        serde_json::json!({"type": "object"})
    } else {
        serde_json::Value::Object(t.input_schema.clone())
    };
    v.insert("inputSchema".into(), schema);
    serde_json::from_value(serde_json::Value::Object(v)).ok()
}

/// Whether a call to a service's tools is made at once: it is up, or calls start it and it is
/// idle or on its way up or down between calls (so lazy and idle services cause no
/// `list_changed` churn).
fn callable(s: &mcpvisor_supervisor::ServiceView) -> bool {
    s.state.is_up()
        || (s.on_demand
            && matches!(
                s.state,
                ServiceState::Idle | ServiceState::Starting | ServiceState::Stopping
            ))
}

/// Whether a service that is not up is coming back by itself now (a restart under way): its
/// tools stay listed, `down_tools: "hide"` or not. An agent that lists again on `list_changed`
/// in the middle of a run (Gemini CLI does) would otherwise lose the tool its model is about to
/// call, for a restart that takes a second; the call is held instead. A service not started
/// (disabled, waiting on a dependency), unreachable (retried slowly), failed or stopped is not.
fn on_its_way_back(state: ServiceState) -> bool {
    matches!(state, ServiceState::Reconnecting | ServiceState::Starting)
}

/// Whether a service in `state` may come back within the hold (so a call waits for it).
pub(crate) fn coming_back(state: ServiceState) -> bool {
    matches!(
        state,
        ServiceState::Reconnecting | ServiceState::Starting | ServiceState::NotStarted
    )
}

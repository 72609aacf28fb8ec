//! The gateway's surface beyond tools (DESIGN §14): what it declares (the union of what its
//! services offer, as far as seen), and what it forwards to clients — resource and prompt list
//! changes, updates of subscribed resources (to the clients that subscribed, under the URI
//! they used) and the servers' log messages (at or above each client's `logging/setLevel`).
// Logging is deprecated from protocol 2026-07-28 (SEP-2577); clients of 2025-11-25 and
// earlier use it, and the servers behind the gateway speak 2025-11-25.
#![allow(deprecated)]

use mcpvisor_model::{Event, ServiceId};
use rmcp::model::{
    LoggingLevel, LoggingMessageNotificationParam, ResourceUpdatedNotificationParam,
    ServerCapabilities,
};
use rmcp::service::{Peer, RoleServer};

use crate::core::{Core, Endpoint};

/// What some service offers beyond tools.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Offered {
    pub resources: bool,
    pub subscribe: bool,
    pub prompts: bool,
    pub completions: bool,
    pub logging: bool,
}

/// A client's subscription to a resource.
pub(crate) struct Subscriber {
    /// The subscribing session (its log-level cell is unique to it).
    pub session: std::sync::Arc<std::sync::atomic::AtomicU8>,
    pub service: ServiceId,
    /// The server's own URI.
    pub original: String,
    /// The URI the client subscribed with.
    pub exposed: String,
    pub peer: Peer<RoleServer>,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Folds the connected services' capabilities into what has been seen offered (never
/// shrinking: a client initialized once keeps what it was told).
pub(crate) fn refresh_offered(core: &Core) {
    let caps = core.store.all_scopes().server_capabilities();
    fold_offered(core, caps.iter().map(|(_, c)| c));
}

/// Folds `caps` into what has been seen offered.
fn fold_offered<'a>(core: &Core, caps: impl IntoIterator<Item = &'a ServerCapabilities>) {
    let mut caps = caps.into_iter().peekable();
    if caps.peek().is_none() {
        return;
    }
    let mut seen = core.offered.write().unwrap_or_else(|p| p.into_inner());
    let mut o = seen.unwrap_or_default();
    for c in caps {
        if let Some(r) = &c.resources {
            o.resources = true;
            o.subscribe |= r.subscribe.unwrap_or(false);
        }
        o.prompts |= c.prompts.is_some();
        o.completions |= c.completions.is_some();
        o.logging |= c.logging.is_some();
    }
    *seen = Some(o);
}

/// The gateway's capabilities: tools always; resources, prompts, completions and logging when
/// some service offers them (all of them before any service connected: mcpvisor relays them).
pub(crate) fn capabilities(core: &Core) -> ServerCapabilities {
    let o = core
        .offered
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or(Offered {
            resources: true,
            subscribe: true,
            prompts: true,
            completions: true,
            logging: true,
        });
    let mut caps = ServerCapabilities::builder()
        .enable_tools()
        .enable_tool_list_changed()
        .build();
    if o.resources {
        let mut r = rmcp::model::ResourcesCapability::default();
        r.list_changed = Some(true);
        r.subscribe = o.subscribe.then_some(true);
        caps.resources = Some(r);
    }
    if o.prompts {
        let mut p = rmcp::model::PromptsCapability::default();
        p.list_changed = Some(true);
        caps.prompts = Some(p);
    }
    if o.completions {
        caps.completions = Some(Default::default());
    }
    if o.logging {
        caps.logging = Some(Default::default());
    }
    caps
}

/// Every connected client.
fn peers(core: &Core) -> Vec<crate::core::Client> {
    let mut clients = lock(&core.clients);
    clients.retain(|(_, p, _)| !p.is_transport_closed());
    clients.clone()
}

/// Whether `endpoint` sees `service`.
pub(crate) fn sees(endpoint: &Endpoint, service: &ServiceId) -> bool {
    match endpoint {
        Endpoint::Default => service.agent.is_none(),
        Endpoint::Agent(a) => service.agent.as_ref().is_some_and(|x| x.as_str() == a),
    }
}

/// Forwards what `event` means for clients beyond tools.
pub(crate) async fn forward(core: &Core, event: &Event) {
    match event {
        Event::ListChanged { service, list, .. } => {
            list_changed(core, service, list == "resources", list == "prompts").await;
        }
        Event::StateChanged {
            service, from, to, ..
        } if from.is_up() != to.is_up() => {
            // A service coming or going changes the resource and prompt lists it is part of.
            // Only the service that came up can add to what is offered (one service looked
            // at, not the fleet: a cold start of 1,000 reports 1,000 of these).
            let caps = core
                .store
                .all_scopes()
                .service_capabilities(&service.to_string());
            fold_offered(core, caps.as_ref());
            let (r, p) = match caps {
                Some(c) => (c.resources.is_some(), c.prompts.is_some()),
                // Down now: it had them if anything was offered at all.
                None => {
                    let o = core
                        .offered
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .unwrap_or_default();
                    (o.resources, o.prompts)
                }
            };
            if r || p {
                list_changed(core, service, r, p).await;
            }
        }
        Event::ResourceUpdated { service, uri, .. } => {
            let targets: Vec<(String, Peer<RoleServer>)> = {
                let mut subs = lock(&core.subscribers);
                subs.retain(|s| !s.peer.is_transport_closed());
                subs.iter()
                    .filter(|s| &s.service == service && &s.original == uri)
                    .map(|s| (s.exposed.clone(), s.peer.clone()))
                    .collect()
            };
            for (exposed, peer) in targets {
                let _ = peer
                    .notify_resource_updated(ResourceUpdatedNotificationParam::new(exposed))
                    .await;
            }
            crate::listen::resource_updated(core, service, uri).await;
        }
        Event::ServerLog {
            service,
            level,
            logger,
            data,
            ..
        } => {
            let Ok(lvl) = serde_json::from_value::<LoggingLevel>(level.clone().into()) else {
                return;
            };
            let logger = Some(match logger {
                Some(l) => format!("{service}/{l}"),
                None => service.to_string(),
            });
            for (endpoint, peer, wanted) in peers(core) {
                if !sees(&endpoint, service) {
                    continue;
                }
                if mcpvisor_model::log_severity(level)
                    < wanted.load(std::sync::atomic::Ordering::Relaxed)
                {
                    continue;
                }
                let note = LoggingMessageNotificationParam::new(lvl, data.clone())
                    .with_logger(logger.clone().unwrap_or_default());
                let _ = peer.notify_logging_message(note).await;
            }
        }
        _ => {}
    }
}

async fn list_changed(core: &Core, service: &ServiceId, resources: bool, prompts: bool) {
    crate::listen::lists_changed(core, service, resources, prompts).await;
    for (endpoint, peer, _) in peers(core) {
        if !sees(&endpoint, service) {
            continue;
        }
        if resources {
            let _ = peer.notify_resource_list_changed().await;
        }
        if prompts {
            let _ = peer.notify_prompt_list_changed().await;
        }
    }
}

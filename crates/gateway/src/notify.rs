//! `notifications/tools/list_changed` to every client whose view changed: a task follows the
//! Store's events (a service up or down, a re-list, an add or a remove), recomputes the view of
//! each endpoint that has clients, and tells that endpoint's clients when its list differs from
//! what they were last shown. Bursts of events are coalesced into one recomputation.

use std::collections::BTreeSet;
use std::sync::Arc;

use mcpvisor_model::Event;

use crate::core::{Core, Endpoint};

/// Follows the Store's events until the Store shuts down.
pub(crate) async fn follow(core: Arc<Core>) {
    let Ok(mut events) = core.store.all_scopes().subscribe().await else {
        return;
    };
    crate::surface::refresh_offered(&core);
    while let Some(event) = events.next().await {
        crate::surface::forward(&core, &event).await;
        if !matters(&event) {
            continue;
        }
        // Coalesce what is already queued (for the tool lists; everything else is forwarded).
        while let Some(e) = events.try_next() {
            crate::surface::forward(&core, &e).await;
        }
        tell(&core).await;
    }
}

fn matters(event: &Event) -> bool {
    matches!(
        event,
        Event::StateChanged { .. } | Event::ToolsChanged { .. } | Event::ConfigChanged { .. }
    )
}

/// Recomputes each endpoint with clients and notifies those whose list changed.
pub(crate) async fn tell(core: &Arc<Core>) {
    let with_clients: BTreeSet<Endpoint> = {
        let mut clients = core.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.retain(|(_, peer, _)| !peer.is_transport_closed());
        let mut with: BTreeSet<Endpoint> = clients.iter().map(|(e, _, _)| e.clone()).collect();
        with.extend(crate::listen::endpoints(core));
        with
    };
    let mut endpoints = with_clients.clone();
    endpoints.extend(core.cached_endpoints());
    for endpoint in endpoints {
        // Refreshes the cached view calls route by, too.
        let Ok(view) = core.view(&endpoint).await else {
            continue;
        };
        if !with_clients.contains(&endpoint) || !core.remember(&endpoint, &view) {
            continue;
        }
        let peers: Vec<_> = core
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(e, _, _)| *e == endpoint)
            .map(|(_, p, _)| p.clone())
            .collect();
        for peer in peers {
            if let Err(e) = peer.notify_tool_list_changed().await {
                tracing::debug!(%endpoint, "list_changed not delivered: {e}");
            }
        }
        crate::listen::tools_changed(core, &endpoint).await;
    }
}

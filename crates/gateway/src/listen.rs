//! `subscriptions/listen` (protocol 2026-07-28, SEP-2575): a 2026 client's one stream of the
//! fleet's changes in place of the session it does not have. rmcp acknowledges the request
//! with the filter it accepted (the one asked for, cut to what the gateway declares) and tags
//! each notification with the subscription's id; the gateway keeps a [`Listener`] per open
//! stream and sends it what it sends the handshake-era clients of the same endpoint: tool
//! list changes when the endpoint's view changed, resource and prompt list changes of the
//! services it sees, and updates of the resources the filter names (subscribed at their
//! servers while any client follows them, under the URI the client used).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mcpvisor_model::ServiceId;
use rmcp::service::{SubscriptionContext, SubscriptionSendError, SubscriptionSink};

use crate::core::{Core, Endpoint};
use crate::handler::Session;

/// One open `subscriptions/listen` stream.
pub(crate) struct Listener {
    id: u64,
    endpoint: Endpoint,
    sink: SubscriptionSink,
    /// The resources it follows: service, the server's URI, the URI the client named.
    resources: Vec<(ServiceId, String, String)>,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn lock(core: &Core) -> std::sync::MutexGuard<'_, Vec<Arc<Listener>>> {
    core.listeners.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves one subscription until the client ends it (or its stream goes).
pub(crate) async fn listen(session: &Session, context: SubscriptionContext) {
    let core = &session.core;
    let mut resources = Vec::new();
    for uri in context.accepted().resource_subscriptions.iter().flatten() {
        let Ok((store, service, original)) = session.subscription_target(uri).await else {
            tracing::debug!(%uri, "listen: no service offers this resource");
            continue;
        };
        if let Err(e) = store.subscribe_resource(uri).await {
            tracing::debug!(%uri, "listen: the server refused the subscription: {e}");
            continue;
        }
        resources.push((service, original, uri.clone()));
    }
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    lock(core).push(Arc::new(Listener {
        id,
        endpoint: session.endpoint.clone(),
        sink: context.sink().clone(),
        resources,
    }));
    context.cancelled().await;
    let gone = {
        let mut listeners = lock(core);
        let at = listeners.iter().position(|l| l.id == id);
        at.map(|i| listeners.remove(i))
    };
    // A server's subscription ends with the last client's.
    if let (Some(gone), Ok(store)) = (gone, core.scoped(&session.endpoint)) {
        for (service, original, exposed) in &gone.resources {
            if !followed(core, service, original) {
                let _ = store.unsubscribe_resource(exposed).await;
            }
        }
    }
}

/// Whether some client (a subscription or a listener) still follows `original` of `service`.
pub(crate) fn followed(core: &Core, service: &ServiceId, original: &str) -> bool {
    let subscribed = core
        .subscribers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|s| &s.service == service && s.original == original);
    subscribed
        || lock(core).iter().any(|l| {
            l.resources
                .iter()
                .any(|(s, o, _)| s == service && o == original)
        })
}

/// The endpoints with an open listener.
pub(crate) fn endpoints(core: &Core) -> Vec<Endpoint> {
    lock(core).iter().map(|l| l.endpoint.clone()).collect()
}

/// Sends `what` to each listener `pick` chooses; a closed one goes.
async fn send<F, Fut>(core: &Core, pick: impl Fn(&Listener) -> bool, what: F)
where
    F: Fn(Arc<Listener>) -> Fut,
    Fut: std::future::Future<Output = Result<(), SubscriptionSendError>>,
{
    let chosen: Vec<Arc<Listener>> = lock(core).iter().filter(|l| pick(l)).cloned().collect();
    for listener in chosen {
        let id = listener.id;
        match what(listener).await {
            Ok(()) | Err(SubscriptionSendError::NotificationNotAccepted(_)) => {}
            Err(e) => {
                tracing::debug!("listen: notification not delivered: {e}");
                if matches!(e, SubscriptionSendError::SubscriptionClosed) {
                    lock(core).retain(|l| l.id != id);
                }
            }
        }
    }
}

/// `endpoint`'s tool list changed.
pub(crate) async fn tools_changed(core: &Core, endpoint: &Endpoint) {
    send(
        core,
        |l| &l.endpoint == endpoint,
        |l| async move { l.sink.notify_tool_list_changed().await },
    )
    .await;
}

/// `service`'s resource and/or prompt list changed.
pub(crate) async fn lists_changed(
    core: &Core,
    service: &ServiceId,
    resources: bool,
    prompts: bool,
) {
    let sees = |l: &Listener| crate::surface::sees(&l.endpoint, service);
    if resources {
        send(core, sees, |l| async move {
            l.sink.notify_resource_list_changed().await
        })
        .await;
    }
    if prompts {
        send(core, sees, |l| async move {
            l.sink.notify_prompt_list_changed().await
        })
        .await;
    }
}

/// `uri` of `service` was updated: each listener following it is told under its own URI.
pub(crate) async fn resource_updated(core: &Core, service: &ServiceId, uri: &str) {
    let targets: Vec<(SubscriptionSink, String)> = lock(core)
        .iter()
        .flat_map(|l| {
            l.resources
                .iter()
                .filter(|(s, o, _)| s == service && o == uri)
                .map(|(_, _, exposed)| (l.sink.clone(), exposed.clone()))
        })
        .collect();
    for (sink, exposed) in targets {
        if let Err(e) = sink.notify_resource_updated(exposed).await {
            tracing::debug!("listen: resource update not delivered: {e}");
        }
    }
}

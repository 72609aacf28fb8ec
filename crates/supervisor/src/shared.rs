//! State shared between the root actor and every `Store` clone, read without a mailbox hop.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use mcpvisor_model::{AgentId, Event, LogRing, ServiceId, ServiceState};
use mcpvisor_persistence_actor::PersistenceMsg;
use mcpvisor_registry_actor::RegistryMsg;
use mcpvisor_service_actor::ServiceHandle;
use ractor::ActorRef;
use tokio::sync::{broadcast, watch};

use crate::error::StoreError;

/// State shared between the root actor and every [`crate::Store`] clone, read without a
/// mailbox hop.
pub(crate) struct Shared {
    /// Call handles by service.
    pub handles: RwLock<HashMap<ServiceId, ServiceHandle>>,
    /// Stderr tails by service.
    pub stderr: RwLock<HashMap<ServiceId, LogRing>>,
    /// Live process groups (pid = pgid → service), for killing on drop without a runtime.
    pub pgids: Mutex<HashMap<u32, ServiceId>>,
    /// The current registry.
    pub registry: RwLock<Option<ActorRef<RegistryMsg>>>,
    /// The current persistence actor.
    pub persistence: RwLock<Option<ActorRef<PersistenceMsg>>>,
    /// Namespaced tool name → (service, the server's tool name), per scope: the fast path of
    /// `call_tool` (no mailbox hop). Bare, shortened and unknown names go to the registry.
    pub routes: RwLock<HashMap<Route, (ServiceId, String)>>,
    /// The event channel: the Store's, handed to every registry spawned, so a subscription
    /// survives a registry respawn.
    pub events: broadcast::Sender<Event>,
    /// Each service's state as the root published it (after the registry was told).
    pub observed: RwLock<HashMap<ServiceId, watch::Receiver<ServiceState>>>,
    /// Who answers the servers' own requests (handed to every service's handle).
    pub relay: mcpvisor_service_actor::relay::Relay,
}

/// A namespaced tool name within a scope (`None` = the store's own services).
pub(crate) type Route = (Option<AgentId>, String);

/// Reads `l`, even if a panicking thread poisoned it (the data is plain maps and refs).
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// Writes `l`, even if poisoned.
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// Locks `m`, even if poisoned.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn registry(&self) -> Result<ActorRef<RegistryMsg>, StoreError> {
        read(&self.registry)
            .clone()
            .ok_or_else(|| StoreError::gone("registry not running"))
    }
    pub(crate) fn persistence(&self) -> Option<ActorRef<PersistenceMsg>> {
        read(&self.persistence).clone()
    }
    pub(crate) fn handle(&self, id: &ServiceId) -> Option<ServiceHandle> {
        read(&self.handles).get(id).cloned()
    }
    pub(crate) fn observed(&self, id: &ServiceId) -> Option<watch::Receiver<ServiceState>> {
        read(&self.observed).get(id).cloned()
    }
}

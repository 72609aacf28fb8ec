//! Waiting for services: for a state (`wait_for`) or for a known outcome (`wait_settled`).
//! Both watch what the root published — after it told the registry — so once a wait
//! returns, every query agrees.

use super::*;

impl Store {
    /// Waits until each named service is in `state` (`healthy` also accepts `warning`).
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// use mcpvisor_supervisor::{model::ServiceState, StoreError};
    /// use std::time::Duration;
    /// match store.wait_for(&["time", "memory"], ServiceState::Healthy, Duration::from_secs(30)).await {
    ///     Ok(()) => println!("both up"),
    ///     Err(StoreError::WaitTimeout { waiting }) => println!("still waiting for {waiting:?}"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn wait_for(
        &self,
        names: &[&str],
        state: ServiceState,
        timeout: Duration,
    ) -> Result<(), StoreError> {
        let mut waits = Vec::new();
        for n in names {
            let id = self.id(n)?;
            let Some(rx) = self.inner.shared.observed(&id) else {
                return Err(StoreError::Lookup(LookupError::UnknownService {
                    name: (*n).to_owned(),
                    suggestions: Vec::new(),
                }));
            };
            let pred = move |s: ServiceState| {
                s == state || (state == ServiceState::Healthy && s == ServiceState::Warning)
            };
            waits.push(async move { ((*n).to_owned(), wait_observed(rx, timeout, pred).await) });
        }
        // All at once: the timeout bounds the whole wait, not each service.
        let waiting: Vec<(String, ServiceState)> = futures_join_all(waits)
            .await
            .into_iter()
            .filter_map(|(n, r)| r.err().map(|now| (n, now)))
            .collect();
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(StoreError::WaitTimeout { waiting })
        }
    }

    /// Waits until service `name` would take a call now: up, on a connection that has not
    /// ended. Unlike [`wait_for`](Self::wait_for) this watches the service itself, so it
    /// does not return for the connection that has just ended while the state still reads
    /// `healthy` (the instant after a server dies, before its supervisor has heard); on
    /// timeout it says the state then.
    pub async fn wait_callable(&self, name: &str, timeout: Duration) -> Result<(), StoreError> {
        let id = self.id(name)?;
        let Some(handle) = self.inner.shared.handle(&id) else {
            return Err(StoreError::Lookup(LookupError::UnknownService {
                name: name.to_owned(),
                suggestions: Vec::new(),
            }));
        };
        handle
            .wait_callable(timeout)
            .await
            .map_err(|now| StoreError::WaitTimeout {
                waiting: vec![(name.to_owned(), now)],
            })
    }

    /// Waits until every service of `names` (all of this scope's when `None`) has a known
    /// outcome: up, failed at least once (`reconnecting`, `unreachable`, `failed`), not asked
    /// to run, or held back by a dependency that settled without coming up — at most
    /// `timeout`. `expect_running`: the services were just asked to start, so `stopped` is not
    /// an outcome yet. `progress` is called whenever the count changes. Returns the services'
    /// views as they are then (check their states: a timeout is no error).
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mcpvisor_supervisor::StoreError> {
    /// # use mcpvisor_supervisor::{Store, StoreOptions, Wait};
    /// # use serde_json::json;
    /// # let store = Store::open(StoreOptions::new()).await?;
    /// store.add_service(json!({"name": "off", "command": "x", "disabled": true}), Wait::None).await?;
    /// let views = store
    ///     .wait_settled(None, false, std::time::Duration::from_secs(5), |p, _| println!("{}", p.line()))
    ///     .await?;
    /// assert_eq!(views[0].state, mcpvisor_supervisor::model::ServiceState::NotStarted);
    /// # store.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait_settled(
        &self,
        names: Option<&[String]>,
        expect_running: bool,
        timeout: Duration,
        mut progress: impl FnMut(&Progress, &[ServiceView]),
    ) -> Result<Vec<ServiceView>, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut events = self.subscribe().await?;
        let mut last: Option<Progress> = None;
        loop {
            let expect = if expect_running {
                let views = self.list_services().await?;
                views
                    .into_iter()
                    .filter(|v| names.is_none_or(|n| n.contains(&v.name)))
                    .map(|v| v.id)
                    .collect()
            } else {
                Default::default()
            };
            // The root's verdict first, then the views: the registry has every report the
            // root had when it answered (they were sent to it before), so the views returned
            // are at least as new as the verdict — never a `starting` the root already saw
            // come up.
            let done = ractor::call!(self.inner.root, |reply| RootMsg::Settled {
                expect_running: expect,
                reply
            })
            .map_err(StoreError::gone)?;
            let views = self.list_services().await?;
            let wanted: Vec<String> = match names {
                Some(n) => n.to_vec(),
                None => views.iter().map(|v| v.name.clone()).collect(),
            };
            let mine: Vec<ServiceView> = views
                .into_iter()
                .filter(|v| wanted.contains(&v.name))
                .collect();
            let pending: Vec<String> = wanted
                .iter()
                .filter(|n| !mine.iter().any(|v| &v.name == *n && done.contains(&v.id)))
                .cloned()
                .collect();
            let p = Progress {
                total: wanted.len(),
                up: mine.iter().filter(|v| v.state.is_up()).count(),
                settled: wanted.len() - pending.len(),
                pending,
            };
            if last.as_ref() != Some(&p) {
                progress(&p, &mine);
                last = Some(p.clone());
            }
            if p.pending.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(mine);
            }
            // Woken by any event, or re-read every SETTLE_POLL at the latest.
            let until =
                (tokio::time::Instant::now() + mcpvisor_model::defaults::SETTLE_POLL).min(deadline);
            tokio::select! {
                _ = events.next() => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }
}

/// Whether a service just added has settled: up, or given up on for now.
pub(super) fn settled_after_add(s: ServiceState) -> bool {
    s.is_up()
        || matches!(
            s,
            ServiceState::Failed | ServiceState::Unreachable | ServiceState::Stopped
        )
}

/// Waits up to `limit` until the published state satisfies `pred`; `Err(state now)` if not.
/// The root publishes a state only after the registry was told, so once this returns every
/// query agrees with it.
pub(super) async fn wait_observed(
    mut rx: tokio::sync::watch::Receiver<ServiceState>,
    limit: Duration,
    pred: impl Fn(ServiceState) -> bool,
) -> Result<(), ServiceState> {
    let ok = matches!(
        tokio::time::timeout(limit, rx.wait_for(|s| pred(*s))).await,
        Ok(Ok(_))
    );
    if ok {
        Ok(())
    } else {
        Err(*rx.borrow())
    }
}

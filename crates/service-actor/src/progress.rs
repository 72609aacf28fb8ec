//! A call's `notifications/progress`, delivered in the order the server sent them and all before
//! the call's answer.
//!
//! rmcp hands each incoming notification to its own task, so a handler can see the last
//! progress notification after the response it preceded has already reached the caller — and a
//! relay that stops at the response loses it. [`ProgressTap`] wraps the transport instead: it
//! reads messages in wire order, and a progress notification for a routed token is delivered to
//! the call's channel before the transport yields the next message (the response). The route is
//! registered as the request goes out (the [`ProgressSink`] rides in the request's extensions,
//! and its token is the one rmcp put in `_meta`), so nothing sent early is missed either.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::model::{
    GetExtensions, GetMeta, JsonRpcMessage, JsonRpcNotification, ProgressToken, ServerNotification,
};
use rmcp::service::{RoleClient, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::sync::mpsc::{UnboundedSender, WeakUnboundedSender};

use crate::handle::CallProgress;

/// The channel a request's progress goes to (put in the request's extensions by
/// [`ProgressRoutes::follow`]). Weak: the caller's own sender decides when the channel ends,
/// never a route left behind.
#[derive(Clone)]
struct ProgressSink(WeakUnboundedSender<CallProgress>);

/// The calls in flight that want their progress, by progress token. Shared by a service's
/// handle (which removes a route when its call ends) and each of its connections' taps.
#[derive(Clone, Default)]
pub(crate) struct ProgressRoutes(
    Arc<Mutex<HashMap<ProgressToken, WeakUnboundedSender<CallProgress>>>>,
);

impl std::fmt::Debug for ProgressRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|m| m.len()).unwrap_or(0);
        write!(f, "ProgressRoutes({n} in flight)")
    }
}

impl ProgressRoutes {
    /// `transport`, with its progress notifications routed to these calls.
    pub(crate) fn tap<T>(&self, transport: T) -> ProgressTap<T> {
        ProgressTap {
            inner: transport,
            routes: self.clone(),
        }
    }

    /// Marks `request` so the connection's tap routes its progress to `tx` as it goes out; the
    /// guard removes the route when the call ends (once given the request's token).
    pub(crate) fn follow<'a>(
        &'a self,
        request: &mut rmcp::model::ClientRequest,
        tx: &'a UnboundedSender<CallProgress>,
    ) -> RouteGuard<'a> {
        request
            .extensions_mut()
            .insert(ProgressSink(tx.downgrade()));
        RouteGuard {
            routes: self,
            tx,
            token: None,
        }
    }

    /// Routes `token`'s progress to `tx` until the guard is dropped (a request sent with a
    /// token of its own, not rmcp's).
    pub(crate) fn route<'a>(
        &'a self,
        token: ProgressToken,
        tx: &'a UnboundedSender<CallProgress>,
    ) -> RouteGuard<'a> {
        self.insert(token.clone(), tx.downgrade());
        RouteGuard {
            routes: self,
            tx,
            token: Some(token),
        }
    }

    fn insert(&self, token: ProgressToken, tx: WeakUnboundedSender<CallProgress>) {
        if let Ok(mut m) = self.0.lock() {
            // A call that ended before its request went out left a dead route: drop those.
            m.retain(|_, tx| tx.strong_count() > 0);
            m.insert(token, tx);
        }
    }

    /// The call with `token` and channel `tx` ended: its route goes — not another call's that
    /// reuses the token (a new connection numbers its tokens from the start again).
    fn remove_own(&self, token: &ProgressToken, tx: &UnboundedSender<CallProgress>) {
        if let Ok(mut m) = self.0.lock() {
            let own = m
                .get(token)
                .is_some_and(|w| w.upgrade().is_none_or(|t| t.same_channel(tx)));
            if own {
                m.remove(token);
            }
        }
    }

    /// Delivers `p` to its call; false when no call asked for it.
    fn deliver(&self, token: &ProgressToken, p: CallProgress) -> bool {
        match self.0.lock() {
            Ok(m) => m
                .get(token)
                .and_then(WeakUnboundedSender::upgrade)
                .is_some_and(|tx| tx.send(p).is_ok()),
            Err(_) => false,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// Removes a call's route when the call ends, however it ends. (A route the tap adds after
/// that — the call was abandoned before its request went out — holds a dead sender, and goes
/// at the next insert.)
pub(crate) struct RouteGuard<'a> {
    routes: &'a ProgressRoutes,
    tx: &'a UnboundedSender<CallProgress>,
    token: Option<ProgressToken>,
}

impl RouteGuard<'_> {
    /// The token rmcp gave the request.
    pub(crate) fn set_token(&mut self, token: ProgressToken) {
        self.token = Some(token);
    }
}

impl Drop for RouteGuard<'_> {
    fn drop(&mut self) {
        if let Some(t) = &self.token {
            self.routes.remove_own(t, self.tx);
        }
    }
}

/// A client transport that routes progress notifications to their calls in wire order.
pub(crate) struct ProgressTap<T> {
    inner: T,
    routes: ProgressRoutes,
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for ProgressTap<T> {
    type Error = T::Error;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn send(
        &mut self,
        mut item: TxJsonRpcMessage<RoleClient>,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send + 'static {
        if let JsonRpcMessage::Request(r) = &mut item {
            if let Some(ProgressSink(tx)) = r.request.extensions_mut().remove::<ProgressSink>() {
                if let Some(token) = r.request.get_meta().get_progress_token() {
                    self.routes.insert(token, tx);
                }
            }
        }
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        loop {
            let message = self.inner.receive().await?;
            if let JsonRpcMessage::Notification(JsonRpcNotification {
                notification: ServerNotification::ProgressNotification(n),
                ..
            }) = &message
            {
                let p = &n.params;
                let update = CallProgress {
                    progress: p.progress,
                    total: p.total,
                    message: p.message.clone(),
                };
                if self.routes.deliver(&p.progress_token, update) {
                    continue;
                }
            }
            return Some(message);
        }
    }

    fn close(&mut self) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{
        CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest,
        ProgressNotificationParam, RequestId, ServerResult,
    };

    /// A transport fed by a list: what is sent is kept, what is received comes from `script`.
    struct Scripted {
        script: std::collections::VecDeque<RxJsonRpcMessage<RoleClient>>,
        sent: Arc<Mutex<Vec<TxJsonRpcMessage<RoleClient>>>>,
    }

    impl Transport<RoleClient> for Scripted {
        type Error = std::io::Error;
        fn send(
            &mut self,
            item: TxJsonRpcMessage<RoleClient>,
        ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send + 'static {
            self.sent.lock().unwrap().push(item);
            std::future::ready(Ok(()))
        }
        async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
            self.script.pop_front()
        }
        async fn close(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    fn progress(token: u32, step: f64) -> RxJsonRpcMessage<RoleClient> {
        JsonRpcMessage::notification(ServerNotification::ProgressNotification(
            rmcp::model::ProgressNotification::new(ProgressNotificationParam::new(
                ProgressToken(rmcp::model::NumberOrString::Number(token.into())),
                step,
            )),
        ))
    }

    #[tokio::test]
    async fn progress_reaches_the_call_before_the_answer_and_others_pass_through() {
        let routes = ProgressRoutes::default();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let answer = JsonRpcMessage::response(
            ServerResult::CallToolResult(CallToolResult::success(vec![])),
            RequestId::Number(1),
        );
        let script = [progress(7, 1.0), progress(9, 5.0), progress(7, 2.0), answer]
            .into_iter()
            .collect();
        let mut tap = routes.tap(Scripted {
            script,
            sent: sent.clone(),
        });
        // The request goes out with its sink and the token rmcp gave it.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut request =
            ClientRequest::CallToolRequest(CallToolRequest::new(CallToolRequestParams::new("t")));
        request
            .get_meta_mut()
            .set_progress_token(ProgressToken(rmcp::model::NumberOrString::Number(7)));
        // (The guard, with no token yet, removes nothing when dropped.)
        drop(routes.follow(&mut request, &tx));
        tap.send(JsonRpcMessage::request(request, RequestId::Number(1)))
            .await
            .unwrap();
        assert_eq!(routes.len(), 1);
        // The sink does not go on the wire.
        match &sent.lock().unwrap()[0] {
            JsonRpcMessage::Request(r) => {
                assert!(r.request.extensions().get::<ProgressSink>().is_none())
            }
            other => panic!("sent {other:?}"),
        }
        // Token 9 is nobody's: it passes through; token 7's are taken; then the answer.
        let first = tap.receive().await.unwrap();
        assert!(
            matches!(first, JsonRpcMessage::Notification(_)),
            "{first:?}"
        );
        let second = tap.receive().await.unwrap();
        assert!(matches!(second, JsonRpcMessage::Response(_)), "{second:?}");
        // Both of token 7's were delivered before the answer came out of the tap.
        let steps: Vec<f64> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|p| p.progress)
            .collect();
        assert_eq!(steps, [1.0, 2.0]);
        // Another call's guard with the same token (an older connection's) leaves it.
        let (other, _) = tokio::sync::mpsc::unbounded_channel();
        routes.remove_own(
            &ProgressToken(rmcp::model::NumberOrString::Number(7)),
            &other,
        );
        assert_eq!(routes.len(), 1);
        // The call ended: its route goes, and the caller's sender alone ends the channel.
        routes.remove_own(&ProgressToken(rmcp::model::NumberOrString::Number(7)), &tx);
        assert_eq!(routes.len(), 0);
        drop(tx);
        assert!(rx.recv().await.is_none());
    }
}

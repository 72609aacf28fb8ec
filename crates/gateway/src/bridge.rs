//! The eras bridged at a 2026-07-28 client's call (DESIGN §17, SEP-2322). A handshake-era
//! server asks its client mid-call (`elicitation/create`, `sampling/createMessage`,
//! `roots/list`) and waits; a 2026-07-28 client has no session to be asked on: it expects an
//! input-required result, answers it, and retries the call with `inputResponses` and the
//! `requestState` it was given.
//!
//! So the call to the server runs in a task of its own, its caller an [`Asker`]
//! (`crate::relay::Caller::Bridge`). A round ([`Bridges::round`]) waits for the call's end or
//! the server's first question: then the call is parked ([`Waiting`]) and the client is
//! answered with the questions (every one asked by then) and a `requestState` sealed by rmcp's
//! `RequestStateCodec` (HMAC, a key of this process, bound to the tool's name, with a TTL).
//! The retry opens it ([`Bridges::resume`]), hands each answer to the question waiting for it,
//! and runs the next round on the same call — as many rounds as the server asks.
//!
//! A question the request's `_meta` did not declare it can answer ends the request with
//! MissingRequiredClientCapability (-32021, HTTP 400) naming the capability, and the call with
//! it (the server's request is refused too).
//!
//! A tampered state, one of another tool, one used before (its call is no longer parked) or
//! one past its time is refused (invalid params) and changes nothing. A call never resumed is
//! cancelled at the server when its state expires (the server's own request deadline,
//! `SERVER_REQUEST_TIMEOUT`), its questions answered with an error: nothing is left waiting.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    ClientCapabilities, InputRequest, InputRequiredResult, InputResponses, RequestStateCodec,
    SealOptions,
};

use crate::fast::Answer;
use rmcp::ErrorData as McpError;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a parked call waits for its client's retry: as long as its server waits for the
/// answer to its request.
pub(crate) const INPUT_TTL: Duration = mcpvisor_model::defaults::SERVER_REQUEST_TIMEOUT;

type Reply = oneshot::Sender<Result<Value, McpError>>;

/// What the server wants of the client mid-call.
enum Ask {
    /// A question, and where its answer goes.
    Input {
        request: Box<InputRequest>,
        reply: Reply,
    },
    /// Something this request's client did not declare it can answer: the request ends with
    /// MissingRequiredClientCapability (-32021, HTTP 400), naming what to declare.
    Missing(McpError),
}

/// The caller of a bridged call: takes the server's questions to the call's rounds.
pub(crate) struct Asker {
    /// What the client declared in the call's `_meta`.
    pub(crate) capabilities: ClientCapabilities,
    asks: mpsc::UnboundedSender<Ask>,
}

impl Asker {
    /// The call's rounds are over (nothing takes questions).
    pub(crate) fn gone(&self) -> bool {
        self.asks.is_closed()
    }

    /// `request`, answered by the client's retry.
    pub(crate) async fn ask(&self, request: InputRequest) -> Result<Value, McpError> {
        let (reply, answer) = oneshot::channel();
        let ended = || McpError::internal_error("mcpvisor: the client's call ended", None);
        self.asks
            .send(Ask::Input {
                request: Box::new(request),
                reply,
            })
            .map_err(|_| ended())?;
        answer.await.map_err(|_| ended())?
    }

    /// `service` asks for `capability` (`"elicitation"`, `"sampling"`, `"roots"`), which the
    /// request did not declare: the client's request ends saying so, and the call with it.
    pub(crate) fn missing(&self, service: &str, capability: &str) {
        let required = serde_json::json!({ capability: {} });
        let error = McpError::new(
            rmcp::model::ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY,
            format!(
                "service '{service}' asks its client for {capability} during this call, and \
                 the request's client capabilities do not declare it"
            ),
            Some(serde_json::json!({ "requiredCapabilities": required })),
        );
        let _ = self.asks.send(Ask::Missing(error));
    }
}

/// A bridged call in flight: the task making it, its questions, what cancels it.
pub(crate) struct Running {
    call: JoinHandle<Result<Answer, McpError>>,
    asks: mpsc::UnboundedReceiver<Ask>,
    cancel: CancellationToken,
    tool: String,
    service: String,
}

/// What a round ends with.
pub(crate) enum Round {
    /// The call's answer.
    Done(Answer),
    /// The server's questions: the client answers them and retries.
    Input(InputRequiredResult),
}

impl Running {
    /// Starts `make` (the call of `tool` of `service`, with the [`Asker`] this gives it as
    /// its caller) in a task.
    pub(crate) fn start<F, Fut>(
        (service, tool): (&str, &str),
        capabilities: ClientCapabilities,
        cancel: CancellationToken,
        make: F,
    ) -> Running
    where
        F: FnOnce(Arc<Asker>) -> Fut,
        Fut: std::future::Future<Output = Result<Answer, McpError>> + Send + 'static,
    {
        let (tx, asks) = mpsc::unbounded_channel();
        let asker = Arc::new(Asker {
            capabilities,
            asks: tx,
        });
        Running {
            call: tokio::spawn(make(asker)),
            asks,
            cancel,
            tool: tool.to_owned(),
            service: service.to_owned(),
        }
    }

    /// The service and the tool (its own name) called.
    pub(crate) fn named(&self) -> (String, String) {
        (self.service.clone(), self.tool.clone())
    }
}

/// A call parked between two rounds: the questions its client was sent, by key.
struct Waiting {
    running: Running,
    replies: BTreeMap<String, Reply>,
}

/// The parked calls of every endpoint, and the key that seals their states.
pub(crate) struct Bridges {
    codec: RequestStateCodec,
    waiting: Mutex<HashMap<String, Waiting>>,
    next: std::sync::atomic::AtomicU64,
}

fn invalid_state(why: impl std::fmt::Display) -> McpError {
    McpError::invalid_params(
        format!(
            "requestState refused: {why} (a call waits {}s for its input)",
            INPUT_TTL.as_secs()
        ),
        None,
    )
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Bridges {
    pub(crate) fn new() -> Bridges {
        use rand::RngCore;
        let mut key = vec![0u8; 32];
        rand::rng().fill_bytes(&mut key);
        // 32 random bytes are above the codec's minimum key length.
        let codec = RequestStateCodec::try_new(key.clone())
            .unwrap_or_else(|_| RequestStateCodec::new_unchecked(key));
        Bridges {
            codec,
            waiting: Mutex::default(),
            next: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many calls wait for their client's input.
    #[cfg(test)]
    pub(crate) fn parked(&self) -> usize {
        self.lock().len()
    }

    /// One round of `running`: its result, or the server's questions as an input-required
    /// result (the call parked until the retry). `cancel` is this round's request's.
    pub(crate) async fn round(
        self: &Arc<Self>,
        mut running: Running,
        cancel: &CancellationToken,
    ) -> Result<Round, McpError> {
        let first = tokio::select! {
            biased;
            done = &mut running.call => {
                return done
                    .unwrap_or_else(|e| {
                        Err(McpError::internal_error(format!("the call failed: {e}"), None))
                    })
                    .map(Round::Done);
            }
            Some(ask) = running.asks.recv() => ask,
            _ = cancel.cancelled() => {
                running.cancel.cancel();
                return Err(crate::handler::cancelled());
            }
        };
        let mut asks = vec![first];
        while let Ok(more) = running.asks.try_recv() {
            asks.push(more);
        }
        let mut requests = BTreeMap::new();
        let mut replies = BTreeMap::new();
        for ask in asks {
            let (request, reply) = match ask {
                Ask::Input { request, reply } => (*request, reply),
                Ask::Missing(error) => {
                    running.cancel.cancel();
                    return Err(error);
                }
            };
            let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let key = format!("mcpvisor-{n}");
            requests.insert(key.clone(), request);
            replies.insert(key, reply);
        }
        let id = random_hex(16);
        let options = SealOptions::new()
            .associated_data(running.tool.as_bytes())
            .ttl(INPUT_TTL);
        let state = self.codec.seal_with(id.as_bytes(), &options);
        self.lock().insert(id.clone(), Waiting { running, replies });
        // Never resumed: the call ends at the server, its questions answered with an error.
        let bridges = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(INPUT_TTL).await;
            let Some(bridges) = bridges.upgrade() else {
                return;
            };
            let expired = bridges.lock().remove(&id);
            if let Some(w) = expired {
                w.running.cancel.cancel();
                for (_, reply) in w.replies {
                    let _ = reply.send(Err(McpError::internal_error(
                        "mcpvisor: the client did not answer in time",
                        None,
                    )));
                }
            }
        });
        Ok(Round::Input(InputRequiredResult::new(
            Some(requests),
            Some(state),
        )))
    }

    /// The parked call `state` names, for `tool`, its questions answered with `responses`
    /// (a question without an answer gets an error); refused if the state is not one this
    /// gateway gave for `tool`, was used, or expired.
    pub(crate) fn resume(
        &self,
        state: &str,
        tool: &str,
        responses: &InputResponses,
    ) -> Result<Running, McpError> {
        // One answer for every way a state fails to open (as the codec asks).
        let id = self
            .codec
            .open_with(state, tool.as_bytes())
            .map_err(|_| invalid_state(format!("not a valid, current one for '{tool}'")))?;
        let id = String::from_utf8(id).map_err(|_| invalid_state("not well formed"))?;
        let waiting = self
            .lock()
            .remove(&id)
            .ok_or_else(|| invalid_state("its call was resumed already or has ended"))?;
        for (key, reply) in waiting.replies {
            let answer = match responses.get(&key) {
                Some(v) => Ok(v.clone()),
                None => Err(McpError::invalid_params(
                    format!("mcpvisor: the client gave no answer to '{key}'"),
                    None,
                )),
            };
            let _ = reply.send(answer);
        }
        Ok(waiting.running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{CallToolResult, ContentBlock, ElicitRequest, ElicitRequestParams};

    fn question() -> InputRequest {
        let params: ElicitRequestParams = serde_json::from_value(serde_json::json!({
            "message": "name?", "requestedSchema": {"type": "object", "properties": {}}
        }))
        .unwrap();
        InputRequest::Elicitation(ElicitRequest::new(params))
    }

    /// A call that asks once and answers with what it was told.
    fn asking(cancel: CancellationToken) -> Running {
        Running::start(
            ("svc", "t"),
            ClientCapabilities::default(),
            cancel,
            |asker| async move {
                let said = asker.ask(question()).await?;
                Ok(Answer::Typed(CallToolResult::success(vec![
                    ContentBlock::text(said.to_string()),
                ])))
            },
        )
    }

    fn parked_state(r: Round) -> (Vec<String>, String) {
        let Round::Input(i) = r else {
            panic!("not input required");
        };
        (
            i.input_requests.unwrap().into_keys().collect(),
            i.request_state.unwrap(),
        )
    }

    #[tokio::test]
    async fn a_question_becomes_input_required_and_the_retry_answers_it() {
        let bridges = Arc::new(Bridges::new());
        let never = CancellationToken::new();
        let first = bridges.round(asking(never.clone()), &never).await.unwrap();
        let (keys, state) = parked_state(first);
        assert_eq!(keys.len(), 1);
        assert_eq!(bridges.parked(), 1);
        let responses: InputResponses = [(keys[0].clone(), serde_json::json!({"ok": 1}))].into();
        let running = bridges.resume(&state, "t", &responses).unwrap();
        let done = bridges.round(running, &never).await.unwrap();
        let Round::Done(Answer::Typed(result)) = done else {
            panic!("not complete");
        };
        assert!(format!("{:?}", result.content).contains("ok"));
        assert_eq!(bridges.parked(), 0);
        // Used once: the same state again is refused.
        assert!(bridges.resume(&state, "t", &responses).is_err());
    }

    #[tokio::test]
    async fn a_tampered_foreign_or_other_tools_state_is_refused_and_changes_nothing() {
        let bridges = Arc::new(Bridges::new());
        let never = CancellationToken::new();
        let (_, state) = parked_state(bridges.round(asking(never.clone()), &never).await.unwrap());
        let none = InputResponses::new();
        assert!(bridges.resume(&state, "another_tool", &none).is_err());
        let mut tampered = state.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(bridges.resume(&tampered, "t", &none).is_err());
        let other = Arc::new(Bridges::new());
        assert!(other.resume(&state, "t", &none).is_err());
        // Still parked, still resumable by the real state.
        assert_eq!(bridges.parked(), 1);
        assert!(bridges.resume(&state, "t", &none).is_ok());
    }

    #[tokio::test]
    async fn a_question_the_client_did_not_declare_ends_the_request_with_32021() {
        let bridges = Arc::new(Bridges::new());
        let cancel = CancellationToken::new();
        let never = CancellationToken::new();
        let running = Running::start(
            ("svc", "t"),
            ClientCapabilities::default(),
            cancel.clone(),
            |a| async move {
                a.missing("svc", "elicitation");
                std::future::pending::<Result<Answer, McpError>>().await
            },
        );
        let Err(e) = bridges.round(running, &never).await else {
            panic!("answered");
        };
        assert_eq!(
            e.code,
            rmcp::model::ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
        );
        assert!(e.data.unwrap()["requiredCapabilities"]["elicitation"].is_object());
        assert!(cancel.is_cancelled());
        assert_eq!(bridges.parked(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_never_resumed_is_cancelled_when_its_state_expires() {
        let bridges = Arc::new(Bridges::new());
        let cancel = CancellationToken::new();
        let never = CancellationToken::new();
        let (_, state) = parked_state(bridges.round(asking(cancel.clone()), &never).await.unwrap());
        tokio::time::sleep(INPUT_TTL + Duration::from_secs(1)).await;
        assert!(cancel.is_cancelled());
        assert_eq!(bridges.parked(), 0);
        assert!(bridges.resume(&state, "t", &InputResponses::new()).is_err());
    }
}

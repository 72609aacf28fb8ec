//! The MCP surface beyond tools (DESIGN §14): resources, resource templates, prompts and
//! completions of every connected service in the scope, asked live (each server is the one
//! authority on its own lists; a service that fails to answer is left out of a listing, not
//! failing it).
//!
//! Names: a prompt is `service__prompt` (the tool separator). A resource URI is kept as the
//! server wrote it — so links in tool results keep working — unless another service of the
//! scope offers the same URI; then each of those is `mcpvisor://<service>/<original URI>`, which
//! maps back by stripping the prefix. Templates follow the same rule. A read goes to the service
//! a `mcpvisor://` URI names, else to the one that listed the URI last, else to the one whose
//! template's fixed prefix matches longest, else to each service offering resources in turn.

use std::collections::HashMap;

use mcpvisor_model::ServiceId;
use mcpvisor_service_actor::ServiceHandle;
use rmcp::model::{
    CompleteRequestParams, CompleteResult, GetPromptRequestParams, GetPromptResult, Prompt,
    ReadResourceRequestParams, ReadResourceResult, Reference, Resource, ResourceTemplate,
    ServerCapabilities, SubscribeRequestParams, UnsubscribeRequestParams,
};

use super::*;

/// The prefix of a URI namespaced by service.
pub const NAMESPACED_URI: &str = "mcpvisor://";

/// One resource as the Store offers it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceEntry {
    /// The service (as named in this scope).
    pub service: String,
    /// The resource, its `uri` as offered (see the module docs).
    pub resource: Resource,
    /// The URI as the server wrote it.
    pub original_uri: String,
}

/// One resource template as the Store offers it.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateEntry {
    /// The service.
    pub service: String,
    /// The template, its `uri_template` as offered.
    pub template: ResourceTemplate,
    /// The template as the server wrote it.
    pub original: String,
}

/// One prompt as the Store offers it.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptEntry {
    /// The service.
    pub service: String,
    /// The prompt, its `name` namespaced (`service__prompt`).
    pub prompt: Prompt,
    /// The name as the server wrote it.
    pub original: String,
}

/// `mcpvisor://<service>/<uri>`.
fn namespaced(service: &str, uri: &str) -> String {
    format!("{NAMESPACED_URI}{service}/{uri}")
}

/// Offered URIs: the original unless it collides within the listing.
fn expose_uris(items: &[(String, String)]) -> Vec<String> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (_, uri) in items {
        *count.entry(uri.as_str()).or_default() += 1;
    }
    items
        .iter()
        .map(|(service, uri)| {
            if count[uri.as_str()] > 1 {
                namespaced(service, uri)
            } else {
                uri.clone()
            }
        })
        .collect()
}

/// The fixed text of a URI template before its first expression.
fn template_prefix(t: &str) -> &str {
    t.split('{').next().unwrap_or(t)
}

impl Store {
    /// The connected services of this scope whose capabilities pass `has`, with their names
    /// in the scope and their handles, sorted by name.
    fn capable(
        &self,
        has: impl Fn(&ServerCapabilities) -> bool,
    ) -> Vec<(String, ServiceId, ServiceHandle)> {
        let scope = self.scope.clone();
        let mut out: Vec<(String, ServiceId, ServiceHandle)> = read(&self.inner.shared.handles)
            .iter()
            .filter(|(id, _)| scope.contains(id))
            .filter(|(_, h)| h.state().is_up() && h.capabilities().is_some_and(|c| has(&c)))
            .map(|(id, h)| (scope.name_of(id), id.clone(), h.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The handle of `service` (a name in this scope), woken first if calls start it.
    async fn handle_of(&self, service: &str) -> Result<ServiceHandle, StoreError> {
        let id = self.id(service)?;
        if self.inner.shared.handle(&id).is_none() {
            return Err(StoreError::Lookup(LookupError::UnknownService {
                name: service.to_owned(),
                suggestions: Vec::new(),
            }));
        }
        self.woken(&id).await
    }

    /// The handle of `id`, woken first if calls start it.
    async fn woken(&self, id: &ServiceId) -> Result<ServiceHandle, StoreError> {
        self.wake(id).await?;
        self.inner
            .shared
            .handle(id)
            .ok_or_else(|| StoreError::gone("service removed"))
    }

    /// The server capabilities of every connected service of this scope, by name.
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// for (service, caps) in store.server_capabilities() {
    ///     println!("{service}: resources {}", caps.resources.is_some());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn server_capabilities(&self) -> Vec<(String, ServerCapabilities)> {
        let scope = self.scope.clone();
        let mut out: Vec<(String, ServerCapabilities)> = read(&self.inner.shared.handles)
            .iter()
            .filter(|(id, h)| scope.contains(id) && h.state().is_up())
            .filter_map(|(id, h)| h.capabilities().map(|c| (scope.name_of(id), c)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// What one service (a name in this scope) declared in `initialize`, while it is up;
    /// `None` when it is down or unknown. One service's part of
    /// [`server_capabilities`](Self::server_capabilities), without looking at the others.
    pub fn service_capabilities(&self, service: &str) -> Option<ServerCapabilities> {
        let h = self.inner.shared.handle(&self.id(service).ok()?)?;
        if h.state().is_up() {
            h.capabilities()
        } else {
            None
        }
    }

    /// Every resource of every connected service of this scope (all pages), URIs offered per
    /// the module's rule.
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// for r in store.list_resources().await? {
    ///     println!("{}  {}  ({})", r.resource.uri, r.resource.name, r.service);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_resources(&self) -> Result<Vec<ResourceEntry>, StoreError> {
        let services = self.capable(|c| c.resources.is_some());
        let lists = futures_join_all(services.into_iter().map(|(name, id, h)| async move {
            let r = h
                .request(
                    "resources/list",
                    |p| async move { p.list_all_resources().await },
                )
                .await;
            (name, id, r)
        }))
        .await;
        let mut found: Vec<(String, ServiceId, Resource)> = Vec::new();
        for (name, id, r) in lists {
            match r {
                Ok(list) => {
                    found.extend(list.into_iter().map(|res| (name.clone(), id.clone(), res)))
                }
                Err(e) => tracing::warn!(service = %name, "resources/list left out: {e}"),
            }
        }
        let keys: Vec<(String, String)> = found
            .iter()
            .map(|(n, _, r)| (n.clone(), r.uri.clone()))
            .collect();
        let offered = expose_uris(&keys);
        let mut routes = lock(&self.inner.resource_routes);
        // This listing replaces the scope's routes: gone resources and services leave them.
        let scope = self.agent();
        routes.retain(|(agent, _), _| *agent != scope);
        let mut out = Vec::with_capacity(found.len());
        for ((name, id, mut resource), uri) in found.into_iter().zip(offered) {
            let original_uri = std::mem::replace(&mut resource.uri, uri.clone());
            routes.insert((self.agent(), uri), (id, original_uri.clone()));
            out.push(ResourceEntry {
                service: name,
                resource,
                original_uri,
            });
        }
        Ok(out)
    }

    /// Every resource template of every connected service of this scope.
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// for t in store.list_resource_templates().await? {
    ///     println!("{}  ({})", t.template.uri_template, t.service);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_resource_templates(&self) -> Result<Vec<TemplateEntry>, StoreError> {
        let found = self.templates().await;
        let keys: Vec<(String, String)> = found
            .iter()
            .map(|(n, _, t)| (n.clone(), t.uri_template.clone()))
            .collect();
        let offered = expose_uris(&keys);
        Ok(found
            .into_iter()
            .zip(offered)
            .map(|((service, _, mut template), uri)| {
                let original = std::mem::replace(&mut template.uri_template, uri);
                TemplateEntry {
                    service,
                    template,
                    original,
                }
            })
            .collect())
    }

    async fn templates(&self) -> Vec<(String, ServiceId, ResourceTemplate)> {
        let services = self.capable(|c| c.resources.is_some());
        let lists = futures_join_all(services.into_iter().map(|(name, id, h)| async move {
            let r = h
                .request("resources/templates/list", |p| async move {
                    p.list_all_resource_templates().await
                })
                .await;
            (name, id, r)
        }))
        .await;
        let mut out = Vec::new();
        for (name, id, r) in lists {
            match r {
                Ok(list) => out.extend(list.into_iter().map(|t| (name.clone(), id.clone(), t))),
                Err(e) => tracing::warn!(service = %name, "resources/templates/list left out: {e}"),
            }
        }
        out
    }

    /// Which service serves `uri` (an offered URI, one a template makes, or a
    /// `mcpvisor://service/...` one), and the server's own URI for it.
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// let (service, uri) = store.resource_target("mcpvisor://files/file:///etc/hosts").await?;
    /// assert_eq!(uri, "file:///etc/hosts");
    /// # Ok(()) }
    /// ```
    pub async fn resource_target(&self, uri: &str) -> Result<(ServiceId, String), StoreError> {
        self.resource_owner(uri).await
    }

    /// Which service serves `uri` (an offered URI or template), and the server's own URI.
    async fn resource_owner(&self, uri: &str) -> Result<(ServiceId, String), StoreError> {
        if let Some(rest) = uri.strip_prefix(NAMESPACED_URI) {
            // The longest service name followed by '/'.
            let scope = self.scope.clone();
            let mut names: Vec<(String, ServiceId)> = read(&self.inner.shared.handles)
                .keys()
                .filter(|id| scope.contains(id))
                .map(|id| (scope.name_of(id), id.clone()))
                .collect();
            names.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
            for (name, id) in names {
                if let Some(original) = rest
                    .strip_prefix(name.as_str())
                    .and_then(|r| r.strip_prefix('/'))
                {
                    return Ok((id, original.to_owned()));
                }
            }
        }
        let key = (self.agent(), uri.to_owned());
        let live = |hit: &(ServiceId, String)| self.inner.shared.handle(&hit.0).is_some();
        if let Some(hit) = lock(&self.inner.resource_routes).get(&key).cloned() {
            if live(&hit) {
                return Ok(hit);
            }
        }
        // Not listed since it appeared (or never listed): list again.
        self.list_resources().await?;
        if let Some(hit) = lock(&self.inner.resource_routes).get(&key).cloned() {
            if live(&hit) {
                return Ok(hit);
            }
        }
        let templates = self.templates().await;
        let best = templates
            .iter()
            .filter(|(_, _, t)| {
                let prefix = template_prefix(&t.uri_template);
                !prefix.is_empty() && uri.starts_with(prefix)
            })
            .max_by_key(|(_, _, t)| template_prefix(&t.uri_template).len());
        if let Some((_, id, _)) = best {
            return Ok((id.clone(), uri.to_owned()));
        }
        Err(StoreError::UnknownResource {
            uri: uri.to_owned(),
            suggestions: Vec::new(),
        })
    }

    /// Reads a resource by its offered URI (or a URI one of the templates makes).
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// let read = store.read_resource("file:///etc/hostname").await?;
    /// println!("{:?}", read.contents);
    /// # Ok(()) }
    /// ```
    pub async fn read_resource(&self, uri: &str) -> Result<ReadResourceResult, StoreError> {
        let read_on = |h: ServiceHandle, original: String| async move {
            let what = format!("resources/read {original}");
            h.request(&what, |p| async move {
                p.read_resource(ReadResourceRequestParams::new(original))
                    .await
            })
            .await
        };
        match self.resource_owner(uri).await {
            Ok((id, original)) => Ok(read_on(self.woken(&id).await?, original).await?),
            Err(unknown) => {
                // Not listed, no template: each service offering resources in turn.
                for (_, _, h) in self.capable(|c| c.resources.is_some()) {
                    if let Ok(r) = read_on(h, uri.to_owned()).await {
                        return Ok(r);
                    }
                }
                let offered: Vec<String> = self
                    .list_resources()
                    .await
                    .map(|l| l.into_iter().map(|r| r.resource.uri).collect())
                    .unwrap_or_default();
                let suggestions =
                    mcpvisor_model::suggest(uri, offered.iter().map(String::as_str), 3);
                Err(match unknown {
                    StoreError::UnknownResource { uri, .. } => {
                        StoreError::UnknownResource { uri, suggestions }
                    }
                    other => other,
                })
            }
        }
    }

    /// Where a subscription to `uri` goes: its owner, or — for a URI nobody lists (yet) — the
    /// one service of the scope that offers resources, if there is only one.
    pub async fn subscription_target(&self, uri: &str) -> Result<(ServiceId, String), StoreError> {
        self.subscription_owner(uri).await
    }

    async fn subscription_owner(&self, uri: &str) -> Result<(ServiceId, String), StoreError> {
        match self.resource_owner(uri).await {
            Err(StoreError::UnknownResource { .. }) => {
                match self.capable(|c| c.resources.is_some()).as_slice() {
                    [(_, id, _)] => Ok((id.clone(), uri.to_owned())),
                    _ => Err(StoreError::UnknownResource {
                        uri: uri.to_owned(),
                        suggestions: Vec::new(),
                    }),
                }
            }
            other => other,
        }
    }

    /// Subscribes to `notifications/resources/updated` for a resource (they arrive as
    /// [`Event::ResourceUpdated`](mcpvisor_model::Event::ResourceUpdated)).
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// store.subscribe_resource("demo://resource/static/document/1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn subscribe_resource(&self, uri: &str) -> Result<(), StoreError> {
        self.subscription(uri, true).await
    }

    /// Ends a subscription made with [`subscribe_resource`](Self::subscribe_resource).
    pub async fn unsubscribe_resource(&self, uri: &str) -> Result<(), StoreError> {
        self.subscription(uri, false).await
    }

    /// Subscribes (`on`) or unsubscribes, remembering it for reconnects.
    async fn subscription(&self, uri: &str, on: bool) -> Result<(), StoreError> {
        let (id, original) = self.subscription_owner(uri).await?;
        let h = self
            .inner
            .shared
            .handle(&id)
            .ok_or_else(|| StoreError::gone("service removed"))?;
        let remembered = original.clone();
        let what = format!(
            "resources/{} {original}",
            if on { "subscribe" } else { "unsubscribe" }
        );
        // Upstreams speak 2025-11-25 (we propose it), where subscribe is current.
        #[allow(deprecated)]
        let done = h
            .request(&what, |p| async move {
                if on {
                    p.subscribe(SubscribeRequestParams::new(original)).await
                } else {
                    p.unsubscribe(UnsubscribeRequestParams::new(original)).await
                }
            })
            .await;
        // Remembered (for reconnects) only once the server took it.
        if done.is_ok() {
            h.remember_subscription(&remembered, on);
        }
        Ok(done?)
    }

    /// Every prompt of every connected service of this scope, named `service__prompt`.
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// for p in store.list_prompts().await? {
    ///     println!("{}: {:?}", p.prompt.name, p.prompt.description);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_prompts(&self) -> Result<Vec<PromptEntry>, StoreError> {
        let sep = self.separator();
        let services = self.capable(|c| c.prompts.is_some());
        let lists = futures_join_all(services.into_iter().map(|(name, _, h)| async move {
            let r = h
                .request(
                    "prompts/list",
                    |p| async move { p.list_all_prompts().await },
                )
                .await;
            (name, r)
        }))
        .await;
        let mut out = Vec::new();
        for (name, r) in lists {
            match r {
                Ok(list) => out.extend(list.into_iter().map(|mut prompt| {
                    let offered = format!("{name}{sep}{}", prompt.name);
                    let original = std::mem::replace(&mut prompt.name, offered);
                    PromptEntry {
                        service: name.clone(),
                        prompt,
                        original,
                    }
                })),
                Err(e) => tracing::warn!(service = %name, "prompts/list left out: {e}"),
            }
        }
        out.sort_by(|a, b| a.prompt.name.cmp(&b.prompt.name));
        Ok(out)
    }

    fn separator(&self) -> String {
        self.inner.separator.clone()
    }

    /// The service and the server's own name of prompt `name` (`service__prompt`, or a bare
    /// name only one service offers).
    async fn prompt_owner(&self, name: &str) -> Result<(String, String), StoreError> {
        let sep = self.separator();
        let scope = self.scope.clone();
        let mut names: Vec<String> = read(&self.inner.shared.handles)
            .keys()
            .filter(|id| scope.contains(id))
            .map(|id| scope.name_of(id))
            .collect();
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        for service in &names {
            if let Some(prompt) = name
                .strip_prefix(service.as_str())
                .and_then(|r| r.strip_prefix(sep.as_str()))
            {
                return Ok((service.clone(), prompt.to_owned()));
            }
        }
        let listed = self.list_prompts().await?;
        let bare: Vec<&PromptEntry> = listed.iter().filter(|p| p.original == name).collect();
        if let [only] = bare.as_slice() {
            return Ok((only.service.clone(), only.original.clone()));
        }
        let offered: Vec<&str> = listed.iter().map(|p| p.prompt.name.as_str()).collect();
        Err(StoreError::UnknownPrompt {
            name: name.to_owned(),
            suggestions: mcpvisor_model::suggest(name, offered, 3),
        })
    }

    /// Gets a prompt by its namespaced (or unique bare) name with its arguments.
    /// ```no_run
    /// # async fn demo(store: mcpvisor_supervisor::Store) -> Result<(), mcpvisor_supervisor::StoreError> {
    /// let args = serde_json::json!({"code": "fn main() {}"});
    /// let got = store.get_prompt("review__code_review", args.as_object().cloned()).await?;
    /// println!("{} messages", got.messages.len());
    /// # Ok(()) }
    /// ```
    pub async fn get_prompt(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
    ) -> Result<GetPromptResult, StoreError> {
        let (service, original) = self.prompt_owner(name).await?;
        let h = self.handle_of(&service).await?;
        let what = format!("prompts/get {original}");
        let mut params = GetPromptRequestParams::new(original);
        params.arguments = arguments;
        Ok(
            h.request(&what, |p| async move { p.get_prompt(params).await })
                .await?,
        )
    }

    /// `completion/complete`, routed to the owner of the prompt (namespaced name) or of the
    /// resource template (offered URI template) it refers to.
    pub async fn complete(
        &self,
        mut params: CompleteRequestParams,
    ) -> Result<CompleteResult, StoreError> {
        let id = match &mut params.r#ref {
            Reference::Prompt(p) => {
                let (service, original) = self.prompt_owner(&p.name).await?;
                p.name = original;
                self.id(&service)?
            }
            Reference::Resource(r) => {
                let (id, original) = match r.uri.strip_prefix(NAMESPACED_URI) {
                    Some(_) => self.resource_owner(&r.uri).await?,
                    None => {
                        let templates = self.templates().await;
                        let hit = templates
                            .iter()
                            .find(|(_, _, t)| t.uri_template == r.uri)
                            .map(|(_, id, t)| (id.clone(), t.uri_template.clone()));
                        match hit {
                            Some(h) => h,
                            None => self.resource_owner(&r.uri).await?,
                        }
                    }
                };
                r.uri = original;
                id
            }
            _ => {
                return Err(StoreError::UnknownPrompt {
                    name: "(a completion reference of a kind this version does not know)".into(),
                    suggestions: Vec::new(),
                })
            }
        };
        let h = self.woken(&id).await?;
        Ok(h.request("completion/complete", |p| async move {
            p.complete(params).await
        })
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uri_is_kept_unless_it_collides_and_then_is_namespaced_reversibly() {
        let items = vec![
            ("a".to_owned(), "file:///x".to_owned()),
            ("b".to_owned(), "file:///x".to_owned()),
            ("b".to_owned(), "demo://only-b".to_owned()),
        ];
        assert_eq!(
            expose_uris(&items),
            [
                "mcpvisor://a/file:///x",
                "mcpvisor://b/file:///x",
                "demo://only-b"
            ]
        );
        assert_eq!(template_prefix("demo://r/{id}/x"), "demo://r/");
    }
}

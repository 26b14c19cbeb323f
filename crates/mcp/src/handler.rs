//! [`Tools`]: the MCP server handler. It lists the catalog, calls tools through the
//! node's call path, and forwards tool-list changes to its client.

use std::borrow::Cow;
use std::sync::Arc;

use parking_lot::Mutex;
use plexus_core::CallContext;
use plexus_jsonrpc::RpcError;
use plexus_node::CallError;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig,
    SubscriptionFilter,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::server::Shared;

/// The protocol versions served: sessions (2025-11-25) and stateless (2026-07-28).
pub(crate) const VERSIONS: [ProtocolVersion; 2] =
    [ProtocolVersion::V_2025_11_25, ProtocolVersion::V_2026_07_28];

/// The authenticated caller of an HTTP request: its name and scopes.
///
/// The gateway's auth layer inserts it as a request extension before the request
/// reaches [`crate::McpServer::router`]; each tool call made by that request then
/// acts for it ([`CallContext::acting_for`]), so the node refuses a tool the token's
/// `call:` scopes do not allow, and `tools/list` lists only the tools it may call.
pub use plexus_core::scope::Caller;

/// One handler per session (2025-11-25), per request (2026-07-28 over HTTP), or per
/// stdio connection. Dropping it ends the task that forwards list changes.
pub(crate) struct Tools {
    shared: Arc<Shared>,
    _alive: oneshot::Sender<()>,
    ended: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Tools {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let (alive, ended) = oneshot::channel();
        Self {
            shared,
            _alive: alive,
            ended: Mutex::new(Some(ended)),
        }
    }
}

fn caller(context: &RequestContext<RoleServer>) -> Option<Caller> {
    let parts = context.extensions.get::<axum::http::request::Parts>()?;
    parts.extensions.get::<Caller>().cloned()
}

/// A call error as the tool result a client shows: `isError` with the code, the
/// outcome and the message of the JSON-RPC error `/rpc` would answer.
fn failed(error: CallError) -> CallToolResult {
    let error = RpcError::from(error);
    CallToolResult::error(vec![ContentBlock::text(format!(
        "error {} ({}): {}",
        error.code, error.outcome, error.message
    ))])
}

impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new(
            self.shared.config.server_name.clone(),
            env!("CARGO_PKG_VERSION"),
        ))
        .with_protocol_version(ProtocolVersion::V_2025_11_25)
        .with_instructions(
            "Each tool is a Plexus method `service.method`; its input schema is the method's params schema.",
        )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(&VERSIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = caller(&context);
        let may_call = |tool: &&rmcp::model::Tool| {
            caller
                .as_ref()
                .is_none_or(|c| c.may_call(tool.name.as_ref()))
        };
        Ok(ListToolsResult::with_all_items(
            self.shared
                .catalog()
                .tools()
                .iter()
                .filter(may_call)
                .cloned()
                .collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name;
        let structured = {
            let catalog = self.shared.catalog();
            let Some(tool) = catalog.get(&name) else {
                // MCP: an unknown tool is a protocol error, -32602.
                return Err(ErrorData::invalid_params(
                    format!("unknown tool `{name}`; tools/list names the tools"),
                    Some(json!({"tool": name})),
                ));
            };
            tool.output_schema.is_some()
        };
        let params = Value::Object(request.arguments.unwrap_or_default());
        let mut ctx = CallContext::new().with_timeout(self.shared.config.call_timeout());
        if let Some(caller) = caller(&context) {
            ctx = ctx.acting_for(&caller);
        }
        let outcome = tokio::select! {
            outcome = self.shared.node.call(&name, params, ctx) => outcome,
            () = context.ct.cancelled() => {
                return Err(ErrorData::internal_error("the call was cancelled by the client", None));
            }
        };
        let result = match outcome {
            Ok(value) => {
                let text = serde_json::to_string(&value).unwrap_or_default();
                let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
                if structured && value.is_object() {
                    result.structured_content = Some(value);
                }
                result
            }
            Err(error) => failed(error),
        };
        Ok(result.into())
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        // A session (or stdio connection) is live: tell it of every list change
        // until it ends. The watch coalesces, so a slow client holds at most one
        // pending change here.
        let Some(mut ended) = self.ended.lock().take() else {
            return;
        };
        let mut changes = self.shared.tool_changes();
        changes.mark_unchanged();
        let peer = context.peer;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = changes.changed() => {
                        if changed.is_err() || peer.notify_tool_list_changed().await.is_err() {
                            break;
                        }
                    }
                    _ = &mut ended => break,
                }
            }
        });
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let _ = requested;
        Some(SubscriptionFilter::builder().tools_list_changed().build())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        if context.accepted().tools_list_changed != Some(true) {
            // Nothing we send was asked for: hold the stream until it is closed.
            context.cancelled().await;
            return Ok(());
        }
        let Some(_slot) = self.shared.try_listen() else {
            return Err(ErrorData::internal_error(
                format!(
                    "too many subscriptions/listen streams are open (max_listeners = {})",
                    self.shared.config.max_listeners
                ),
                None,
            ));
        };
        let mut changes = self.shared.tool_changes();
        changes.mark_unchanged();
        loop {
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    if context.sink().notify_tool_list_changed().await.is_err() {
                        return Ok(());
                    }
                }
                () = context.cancelled() => return Ok(()),
            }
        }
    }
}

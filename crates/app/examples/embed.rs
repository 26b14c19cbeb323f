//! Embedding Plexus in a Rust program: a node with one service of the program's own
//! beside the built-in ones, served on a port the system chooses.
//!
//! Run it with `cargo run -p plexus-app --example embed`, then from another terminal
//! `curl -s localhost:PORT/rpc -d '{"jsonrpc":"2.0","id":1,"method":"greeter.hello","params":{"name":"you"}}'`.
//! Ctrl-C stops it. `tests/embed.rs` runs the same code.

use std::sync::Arc;

use plexus_app::{App, AppError, Listening};
use plexus_core::{
    CallContext, MethodDescriptor, Service, ServiceDescriptor, ServiceError, async_trait,
};
use serde_json::{Value, json};

/// A service of the program's own: `greeter.hello {name}` answers `{greeting}`.
pub struct Greeter;

#[async_trait]
impl Service for Greeter {
    fn descriptor(&self) -> ServiceDescriptor {
        let hello = MethodDescriptor::new("hello")
            .with_description("Greets someone by name.")
            .idempotent()
            .with_params(json!({
                "type": "object",
                "properties": {"name": {"type": "string", "minLength": 1}},
                "required": ["name"],
                "additionalProperties": false
            }));
        ServiceDescriptor::new("greeter", "example").with_method(hello)
    }

    async fn call(
        &self,
        _method: &str,
        params: Value,
        _ctx: CallContext,
    ) -> Result<Value, ServiceError> {
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("stranger");
        Ok(json!({"greeting": format!("hello, {name}")}))
    }
}

/// Starts the node from `toml` with the greeter, and binds its gateway.
pub async fn start(toml: &str) -> Result<(App, Listening), AppError> {
    let app = App::builder()
        .toml(toml)
        .service(Arc::new(Greeter))
        .start()
        .await?;
    match app.listen().await {
        Ok(listening) => Ok((app, listening)),
        Err(e) => {
            app.stop().await;
            Err(e)
        }
    }
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), AppError> {
    let (app, listening) =
        start("[node]\nname = \"embedded\"\n[gateway]\nbind = \"127.0.0.1:0\"\n").await?;
    println!("embedded node on http://{}", listening.local_addr()?);
    app.serve(listening, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

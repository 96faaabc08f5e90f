//! Plugins: the loaded set, each plugin's state, generation and last error, and reload.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;

use super::forms::{Fields, flash};
use super::{Session, Ui, see_other};

pub(super) fn routes() -> Router<Ui> {
    Router::new().route("/ui/plugins", get(list)).route("/ui/plugins/reload", post(reload))
}

async fn list(State(ui): State<Ui>, s: Session, RawQuery(raw): RawQuery) -> Response {
    let a = ui.call(&s, Method::GET, "/api/v1/plugins", None).await;
    if !a.ok() {
        return ui.refused(&s, "Plugins", &a);
    }
    ui.page(
        Some(&s),
        "plugins.html",
        json!({"title": "Plugins", "section": "/ui/plugins", "set": a.body,
            "flash": raw.as_deref().and_then(flash)}),
    )
}

async fn reload(State(ui): State<Ui>, s: Session, f: Fields) -> Response {
    if let Err(r) = f.check_csrf(&ui, &s) {
        return r;
    }
    let a = ui.call(&s, Method::POST, "/api/v1/plugins/reload", None).await;
    if !a.ok() {
        return ui.refused(&s, "Reload plugins", &a);
    }
    see_other("/ui/plugins?done=reloaded")
}

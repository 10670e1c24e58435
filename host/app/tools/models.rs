//! `sse-wasm models`: the operator's view of the model store: every app's models, listed or
//! deleted by app id and name, while the server runs or not.

use std::io::Write;

use crate::wasm::ModelStore;

/// Prints every app's models (or `app`'s alone), a tab-separated line each: app id, model,
/// bytes, when saved (seconds since 1970); the shared models last, with `(shared)` as app.
pub fn list(store: &ModelStore, app: Option<&str>, out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(out, "app\tmodel\tbytes\tsaved")?;
    for listing in store.list_all(app)? {
        for model in &listing.models {
            writeln!(out, "{}\t{}\t{}\t{}", listing.app.escape_debug(), model.name, model.bytes, model.modified)?;
        }
    }
    for model in store.shared_models()? {
        writeln!(out, "(shared)\t{}\t{}\t{}", model.name, model.bytes, model.modified)?;
    }
    Ok(())
}

/// Deletes `app`'s model `name`; fails, naming it, when there is none.
pub fn delete(store: &ModelStore, app: &str, name: &str, out: &mut impl Write) -> anyhow::Result<()> {
    anyhow::ensure!(store.delete(app, name)?, "app {app:?} has no model {name:?}");
    writeln!(out, "deleted {name} of app {app}")?;
    Ok(())
}

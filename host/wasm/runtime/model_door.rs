//! The `qlik:sse/models` import: a component's way to the model store, open only to the calling
//! app's models (and the shared ones), in the WIT types the import answers in. The runtime links
//! it, and never serves it to an inline call (the store reads and syncs files).

use wasmtime::component::{ComponentType, Lift, Lower};

use crate::error::{ModelError, ModelFault};
use crate::wasm::models::{AppModels, ModelInfo, no_store};

/// The name a component imports the store under.
pub const MODELS_IMPORT: &str = "qlik:sse/models@0.1.0";

/// The WIT `fault`, in its order.
#[derive(ComponentType, Lift, Lower, Clone, Copy, Debug, PartialEq, Eq)]
#[component(enum)]
#[repr(u8)]
pub(super) enum Fault {
    #[component(name = "name")]
    Name,
    #[component(name = "limit")]
    Limit,
    #[component(name = "missing")]
    Missing,
    #[component(name = "storage")]
    Storage,
    #[component(name = "off")]
    Off,
}

/// The WIT `refusal`.
#[derive(ComponentType, Lift, Lower, Clone, Debug)]
#[component(record)]
pub(super) struct Refusal {
    fault: Fault,
    message: String,
}

/// The WIT `model-info`.
#[derive(ComponentType, Lift, Lower, Clone, Debug)]
#[component(record)]
pub(super) struct Info {
    name: String,
    bytes: u64,
    shared: bool,
    modified: u64,
}

impl From<&ModelError> for Refusal {
    fn from(error: &ModelError) -> Self {
        let fault = match error.fault {
            ModelFault::Name => Fault::Name,
            ModelFault::Limit => Fault::Limit,
            ModelFault::Missing => Fault::Missing,
            ModelFault::Storage => Fault::Storage,
            ModelFault::Off => Fault::Off,
        };
        Self { fault, message: error.message.clone() }
    }
}

impl From<ModelInfo> for Info {
    fn from(m: ModelInfo) -> Self {
        Self { name: m.name, bytes: m.bytes, shared: m.shared, modified: m.modified }
    }
}

/// One store's way to the model store: the calling app's models, given when a call takes the
/// store (never to a store that only loads or describes a component, or runs a script), and the
/// last refusal of the guest's current entry, whose gRPC code the call fails with if the guest
/// then fails.
#[derive(Debug, Default)]
pub struct ModelDoor {
    app: Option<AppModels>,
    refused: Option<ModelError>,
}

impl ModelDoor {
    /// Opens the door to `app`'s models (`None`: the host keeps none).
    pub fn open(&mut self, app: Option<AppModels>) {
        self.app = app;
    }

    /// The refusal the guest met in its current entry, taken.
    pub fn take_refusal(&mut self) -> Option<ModelError> {
        self.refused.take()
    }

    /// Forgets a refusal of an earlier entry.
    pub fn forget_refusal(&mut self) {
        self.refused = None;
    }

    /// The calling app's models, or the refusal of a store that has none for this call.
    pub(super) fn app(&self) -> Result<AppModels, ModelError> {
        self.app.clone().ok_or_else(no_store)
    }

    /// The answer to the guest: a refusal is kept for the call's status.
    pub(super) fn answer<R>(&mut self, answer: Result<R, ModelError>) -> Result<R, Refusal> {
        answer.map_err(|error| {
            let refusal = Refusal::from(&error);
            self.refused = Some(error);
            refusal
        })
    }
}

/// The models of the app, listed as the import answers.
pub(super) fn listed(app: &AppModels) -> Result<Vec<Info>, ModelError> {
    app.list().map(|list| list.into_iter().map(Info::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_door_without_a_store_refuses_and_keeps_the_refusal() {
        let mut door = ModelDoor::default();
        let refusal = door.answer(door.app().and_then(|app| app.load("m"))).unwrap_err();
        assert_eq!(refusal.fault, Fault::Off);
        assert!(refusal.message.contains("--models-dir"), "{}", refusal.message);
        assert_eq!(door.take_refusal().map(|e| e.fault), Some(ModelFault::Off));
        assert!(door.take_refusal().is_none(), "taken once");
    }

    #[test]
    fn refusals_keep_their_kind() {
        for (fault, wit) in [
            (ModelFault::Name, Fault::Name),
            (ModelFault::Limit, Fault::Limit),
            (ModelFault::Missing, Fault::Missing),
            (ModelFault::Storage, Fault::Storage),
            (ModelFault::Off, Fault::Off),
        ] {
            assert_eq!(Refusal::from(&ModelError::new(fault, "why".into())).fault, wit);
        }
    }
}

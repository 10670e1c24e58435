//! End-to-end tests: a real sse-wasm server on loopback, driven by a real gRPC client generated
//! from Qlik's proto, serving the example and test guests built by `make guests`.

mod balancer;
mod cache;
mod capture;
mod clients;
mod component_models;
mod datasci;
mod datasci_analytics;
mod datasci_models;
mod doctor;
mod errors;
mod examples;
mod first_run;
mod js_scripts;
mod languages;
mod layout;
mod loading;
mod metrics;
mod reload;
mod sandbox;
mod scripts;
mod status_page;
mod swap;
mod tls;
mod toolkit;
#[allow(dead_code)] // Each test uses its own part of the shared plumbing.
mod util;
mod windows;
mod wire;

//! The program around the library, in rooms, each using only those before it in this list:
//!
//! | room | holds |
//! |---|---|
//! | [`tools`] | the guest author's `inspect`, `call`, `new` and `datasci-snapshot` |
//! | [`cli`] | flags and environment into a validated configuration |
//! | [`run`] | serving the folder until told to stop, and where the log goes |
//! | [`service`] | the Windows service: install, uninstall, run |
//!
//! The top of the crate: `main` calls it, nothing in the library uses it.

pub mod cli;
pub mod run;
pub mod service;
pub mod tools;

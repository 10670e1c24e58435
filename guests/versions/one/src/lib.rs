//! Test guest, version one: see `../versioned.rs`.

const VERSION: f64 = 1.0;
const ONLY_HERE: &str = "OnlyInOne";

include!("../../versioned.rs");

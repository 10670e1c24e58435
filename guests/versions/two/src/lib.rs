//! Test guest, version two: see `../versioned.rs`.

const VERSION: f64 = 2.0;
const ONLY_HERE: &str = "OnlyInTwo";

include!("../../versioned.rs");

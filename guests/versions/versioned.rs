// Shared by the `version-one` and `version-two` test guests, which differ only in `VERSION`:
// the same function names, different answers, so a test can tell which version served a call.

use sse_guest::{Aggregate, Function};

fn version(_row: f64) -> f64 {
    VERSION
}

/// Answers the version once, after every row.
#[derive(Default)]
struct VersionOfCall;

impl Aggregate for VersionOfCall {
    type Args = f64;
    type Output = f64;
    fn update(&mut self, _row: f64) {}
    fn finish(self) -> f64 {
        VERSION
    }
}

sse_guest::export_functions![
    Function::tensor("Version", version).params(["x"]).describe("The version of this guest, per row"),
    Function::aggregate::<VersionOfCall>("VersionOfCall").params(["x"]),
    Function::scalar(ONLY_HERE, version).params(["x"]),
];

//! Capture and replay, through the real binary: with `--capture`, each call of the captured
//! functions is written as Qlik sent it (headers and every message), bounded in files; `sse-wasm
//! call MODULE FUNCTION --replay FILE` runs it again without Qlik and prints the same answer.

use std::path::{Path, PathBuf};

use sse_wasm::pb;

use crate::util::*;

/// The capture files in `dir`, oldest first.
fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "ssecap"));
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_call_replays_to_the_same_answer_and_captures_stay_bounded() {
    let root = tempfile::tempdir().expect("temp dir");
    let args = ["--capture", "captures", "--capture-functions", "SumOfRows", "--capture-max-files", "3"];
    let binary = Binary::start(root.path(), &["column_operations"], &args, "warn").await;
    let mut client = binary.client().await;
    let log = binary.log();
    eventually("the capture is announced", || async { log().iter().any(|l| l.contains("CAPTURING")) }).await;

    // A call as Qlik makes it: an app's header, many bundles.
    let rows: Vec<pb::Row> = (0..1000).map(|i| row(&[V::N(f64::from(i) / 8.0), V::N(0.25)])).collect();
    let answer = call_in_app(&mut client, "sales-app", "SumOfRows", bundles(rows, 100)).await.expect("call");
    let dir = root.path().join("captures");
    let complete = || {
        captures(&dir).first().is_some_and(|f| sse_wasm::server::capture::read(f).is_ok_and(|c| c.messages.len() == 10))
    };
    eventually("the capture is complete", || async { complete() }).await;
    let file = captures(&dir).remove(0);

    // Replayed without Qlik: the same rows answered.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sse-wasm"))
        .arg("call")
        .arg(binary.functions.join("column_operations.wasm"))
        .args(["SumOfRows", "--replay"])
        .arg(&file)
        .env_remove("RUST_LOG")
        .output()
        .expect("sse-wasm call runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(r#"replaying a call of SumOfRows from app "sales-app": 10 message(s)"#), "{stderr}");
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("SumOfRows"));
    let replayed: Vec<f64> = lines.map(|l| l.parse().expect("a number")).collect();
    assert_eq!(replayed, answer.numbers(), "the replay answers as the call did");

    // Only the named functions are captured, and at most three calls are kept.
    call(&mut client, "SumOfColumn", bundles(numbers(&[1.0, 2.0]), 1)).await.expect("not captured");
    for _ in 0..5 {
        call_in_app(&mut client, "sales-app", "SumOfRows", bundles(vec![row(&[V::N(1.0), V::N(2.0)])], 1))
            .await
            .expect("captured");
    }
    let names = || captures(&dir).iter().map(|f| f.file_name().expect("name").to_string_lossy().into_owned()).collect();
    eventually("the newest three captures are kept", || async {
        let names: Vec<String> = names();
        names.len() == 3 && !names.contains(&file.file_name().expect("name").to_string_lossy().into_owned())
    })
    .await;
    assert!(names().iter().all(|n: &String| n.ends_with("-SumOfRows.ssecap")), "{:?}", names());

    // Anything else given as a capture is refused by name.
    std::fs::write(root.path().join("not-a-capture"), "hello").expect("write");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sse-wasm"))
        .arg("call")
        .arg(binary.functions.join("column_operations.wasm"))
        .args(["SumOfRows", "--replay"])
        .arg(root.path().join("not-a-capture"))
        .output()
        .expect("sse-wasm call runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a capture"));
}

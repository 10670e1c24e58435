//! The host's module graph: no module depends on itself through others, and the layers named in
//! `host/lib.rs` (and `ARCHITECTURE.md`) are used only from above.
//!
//! The graph is read from the sources: modules are found by following `mod` declarations from
//! `host/lib.rs` (test modules left out), and an edge is every `crate::…` or `super::…` path a
//! module's non-test code names, resolved to the deepest module it reaches. The code generated for
//! `wire::pb` counts as that module's. `cargo test --test integration layout` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first: each may use only those before it.
const LAYERS: &[&str] = &["model", "wire", "error", "observe", "wasm", "functions", "server", "app"];

/// The rooms of the layers that have them, bottom first: each may use only those before it (a
/// layer's facade, its `mod.rs`, re-exports from any).
const ROOMS: &[(&str, &[&str])] = &[
    ("observe", &["log", "metrics"]),
    ("wasm", &["cache", "models", "runtime", "component", "datasci", "scripts", "guest"]),
    ("functions", &["native", "registry", "call", "reload"]),
    ("app", &["tools", "cli", "run", "service"]),
];

fn host() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("host")
}

/// A module's code without its test modules.
fn non_test(text: &str) -> &str {
    ["#[cfg(test)]\nmod ", "#[cfg(test)]\n#[path"]
        .iter()
        .filter_map(|m| text.find(m))
        .min()
        .map_or(text, |at| &text[..at])
}

/// Every module of the library: its path (`wasm::runtime`, "" for the root) and its file.
fn modules() -> BTreeMap<String, PathBuf> {
    let mut found = BTreeMap::new();
    let mut todo = vec![(String::new(), host().join("lib.rs"))];
    while let Some((name, file)) = todo.pop() {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let is_dir_module = name.is_empty() || file.ends_with("mod.rs");
        let dir = if is_dir_module { file.parent().expect("parent").to_owned() } else { file.with_extension("") };
        for line in non_test(&text).lines() {
            let line = line.trim_start_matches("pub(crate) ").trim_start_matches("pub ");
            let Some(child) = line.strip_prefix("mod ").and_then(|l| l.strip_suffix(';')) else { continue };
            let path = if name.is_empty() { child.to_owned() } else { format!("{name}::{child}") };
            let flat = dir.join(format!("{child}.rs"));
            let file = if flat.exists() { flat } else { dir.join(child).join("mod.rs") };
            todo.push((path, file));
        }
        found.insert(name, file);
    }
    found
}

/// The paths `text` names after `prefix` (`crate::`, `super::`), braces expanded:
/// `crate::wire::{convert, pb}` names `wire::convert` and `wire::pb`.
fn named_paths(text: &str, prefix: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
        let head = rest[..end].trim_end_matches(':');
        if rest[end..].starts_with('{') && rest[..end].ends_with("::") {
            let close = rest[end..].find('}').map_or(rest.len(), |c| end + c);
            for item in rest[end + 1..close].split(',') {
                let item = item.trim().trim_start_matches('{').split(" as ").next().unwrap_or("").trim();
                if !item.is_empty() && item != "self" {
                    paths.push(format!("{head}::{item}"));
                }
            }
            paths.push(head.to_owned());
        } else {
            paths.push(head.to_owned());
        }
    }
    paths
}

/// The deepest module of `modules` that `path` reaches.
fn resolve(path: &str, modules: &BTreeMap<String, PathBuf>) -> String {
    let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
    (0..=parts.len()).rev().map(|n| parts[..n].join("::")).find(|m| modules.contains_key(m)).unwrap_or_default()
}

fn parent(module: &str) -> String {
    module.rsplit_once("::").map_or(String::new(), |(p, _)| p.to_owned())
}

/// Module → the modules it uses (itself and the root excluded; declaring a submodule is not using
/// it, re-exporting or importing from it is).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let mut graph = BTreeMap::new();
    for (name, file) in modules.iter().filter(|(name, _)| !name.is_empty()) {
        let source = std::fs::read_to_string(file).expect("readable");
        // Comments name paths without using them.
        let mut text: String = non_test(&source)
            .lines()
            .map(|line| line.split_once("//").map_or(line, |(code, _)| code))
            .collect::<Vec<_>>()
            .join("\n");
        // A visibility (`pub(in crate::wasm)`) names a module without using it.
        text = text.replace("pub(in crate::", "pub(in ");
        if name == "wire::pb" {
            text +=
                &std::fs::read_to_string(concat!(env!("OUT_DIR"), "/wire/qlik.sse.Connector.rs")).expect("generated");
        }
        let mut uses = BTreeSet::new();
        for path in named_paths(&text, "crate::") {
            uses.insert(resolve(&path, &modules));
        }
        // `super::` in a file module names its parent's items (or siblings); in `mod.rs`, too.
        for path in named_paths(&text, "super::") {
            let base = parent(name);
            let full = if base.is_empty() { path } else { format!("{base}::{path}") };
            uses.insert(resolve(&full, &modules));
        }
        // `use child::…` in a module that declares `child` (re-exports and imports from its own
        // submodules).
        for line in text.lines() {
            let line = line.trim().trim_start_matches("pub(crate) ").trim_start_matches("pub ");
            let Some(path) = line.strip_prefix("use ") else { continue };
            let child = path.split("::").next().unwrap_or_default();
            let full = if name.is_empty() { child.to_owned() } else { format!("{name}::{child}") };
            if modules.contains_key(&full) {
                uses.insert(full);
            }
        }
        uses.retain(|used| !used.is_empty() && used != name);
        graph.insert(name.clone(), uses);
    }
    graph
}

/// A cycle of `graph`, if it has one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let (mut stack, mut done) = (Vec::new(), BTreeSet::new());
    graph.keys().find_map(|node| visit(node, graph, &mut stack, &mut done))
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let graph = graph();
    for (module, uses) in &graph {
        println!("{module} -> {}", uses.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    assert!(graph.contains_key("wasm::runtime") && graph.len() > 30, "the module tree was found: {graph:?}");
    if let Some(cycle) = cycle(&graph) {
        panic!("an import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn layers_are_used_only_from_above() {
    let top = |module: &str| module.split("::").next().unwrap_or_default().to_owned();
    let rank = |module: &str| LAYERS.iter().position(|l| *l == top(module));
    let mut wrong = Vec::new();
    for (module, uses) in graph() {
        let Some(own) = rank(&module) else {
            wrong.push(format!("{module} is in no layer of LAYERS"));
            continue;
        };
        for used in uses {
            if top(&used) != top(&module) && rank(&used).is_none_or(|r| r >= own) {
                wrong.push(format!("{module} uses {used}, which is not below it"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_rooms_of_each_layer_are_used_only_from_above() {
    let mut wrong = Vec::new();
    let graph = graph();
    for (layer, rooms) in ROOMS {
        let prefix = format!("{layer}::");
        let room =
            |module: &str| module.strip_prefix(&prefix).map(|m| m.split("::").next().unwrap_or_default().to_owned());
        let rank = |room: &str| rooms.iter().position(|r| *r == room);
        for (module, uses) in &graph {
            let Some(own) = room(module) else { continue };
            let Some(own_rank) = rank(&own) else {
                wrong.push(format!("{module} is in no room of {layer}'s in ROOMS"));
                continue;
            };
            for used in uses {
                let Some(other) = room(used) else { continue };
                if other != own && rank(&other).is_none_or(|r| r >= own_rank) {
                    wrong.push(format!("{module} uses {used}, which is not in a room of {layer} below it"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Most modules a folder of `host/` may hold side by side, and most lines any module of the host
/// may have (its unit tests aside), so that a reader finds a concept in one place.
const MOST_MODULES: usize = 8;
const MOST_LINES: usize = 500;

#[test]
fn folders_and_modules_stay_small() {
    let mut wrong = Vec::new();
    let mut folders: BTreeMap<String, usize> = BTreeMap::new();
    for (name, file) in modules() {
        let text = std::fs::read_to_string(&file).expect("readable");
        let lines = non_test(&text).lines().count();
        if lines > MOST_LINES {
            wrong.push(format!("{name} ({}) has {lines} lines, more than {MOST_LINES}", file.display()));
        }
        if !name.is_empty() {
            *folders.entry(parent(&name)).or_default() += 1;
        }
    }
    assert!(folders.len() > 8, "the folders were found: {folders:?}");
    for (folder, count) in folders.into_iter().filter(|(_, n)| *n > MOST_MODULES) {
        let folder = if folder.is_empty() { "host".to_owned() } else { format!("host/{}", folder.replace("::", "/")) };
        wrong.push(format!("{folder} holds {count} modules, more than {MOST_MODULES}"));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

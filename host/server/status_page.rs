//! The status page at `/` of the metrics listener: what the host serves (functions with their
//! files and ids, script engines), files that failed to load and why, calls and errors per
//! function with p50/p99, call slots, the compile cache and the model store. Plain HTML for a
//! person, no JavaScript; it refreshes itself every 10 seconds.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::functions::registry::Registry;
use crate::model::{DataType, FunctionType};

/// What the page shows, read at one moment.
pub(super) struct Status<'a> {
    /// The functions served.
    pub registry: &'a Registry,
    /// Files whose latest version failed to load, and why.
    pub failing: &'a BTreeMap<std::path::PathBuf, String>,
    /// Seconds since the server started.
    pub uptime: u64,
    /// Calls running.
    pub running: usize,
    /// True when the host keeps a model store (its totals are in `scrape`).
    pub models: bool,
    /// The metrics, as scraped now (OpenMetrics text).
    pub scrape: &'a str,
}

/// Text made safe inside HTML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One function's calls, read from the metrics.
#[derive(Default)]
struct Calls {
    ok: f64,
    errors: f64,
    /// Cumulative histogram buckets of call time: upper bound, calls at or under it.
    buckets: Vec<(f64, f64)>,
}

/// A sample line of OpenMetrics text: its name, labels and value.
fn sample(line: &str) -> Option<(&str, BTreeMap<&str, &str>, f64)> {
    let (head, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        Some((name, labels)) => (name, labels.strip_suffix('}')?),
        None => (head, ""),
    };
    let labels =
        labels.split(',').filter_map(|pair| pair.split_once('=')).map(|(k, v)| (k, v.trim_matches('"'))).collect();
    Some((name, labels, value))
}

/// The `q` quantile of a cumulative histogram, interpolated inside its bucket as Prometheus'
/// `histogram_quantile` does; `None` without calls.
fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut below = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(below.0);
            }
            let share = if count > below.1 { (rank - below.1) / (count - below.1) } else { 1.0 };
            return Some(below.0 + (le - below.0) * share);
        }
        below = (le, count);
    }
    None
}

fn seconds(value: Option<f64>) -> String {
    match value {
        None => "–".to_owned(),
        Some(s) if s < 1e-3 => format!("{:.0} µs", s * 1e6),
        Some(s) if s < 1.0 => format!("{:.1} ms", s * 1e3),
        Some(s) => format!("{s:.2} s"),
    }
}

fn type_name(t: DataType) -> &'static str {
    match t {
        DataType::Text => "STRING",
        DataType::Numeric => "NUMERIC",
        DataType::Dual => "DUAL",
    }
}

/// The page.
pub(super) fn render(status: &Status<'_>) -> String {
    let scrape = status.scrape;
    let mut calls: BTreeMap<String, Calls> = BTreeMap::new();
    let mut totals: BTreeMap<&str, f64> = BTreeMap::new();
    // Script evaluations by language: succeeded, failed.
    let mut scripts: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (name, labels, value) in scrape.lines().filter(|l| !l.starts_with('#')).filter_map(sample) {
        match name {
            "sse_wasm_calls_total" => {
                let entry = calls.entry(labels.get("function").copied().unwrap_or_default().to_owned()).or_default();
                if labels.get("code") == Some(&"OK") { entry.ok += value } else { entry.errors += value }
            }
            "sse_wasm_script_evaluations_total" => {
                let entry = scripts.entry(labels.get("engine").copied().unwrap_or_default().to_owned()).or_default();
                if labels.get("code") == Some(&"OK") { entry.0 += value } else { entry.1 += value }
            }
            "sse_wasm_call_seconds_bucket" => {
                let le = labels.get("le").and_then(|le| le.parse().ok()).unwrap_or(f64::INFINITY);
                let function = labels.get("function").copied().unwrap_or_default().to_owned();
                calls.entry(function).or_default().buckets.push((le, value));
            }
            _ if labels.is_empty() => {
                totals.insert(name, value);
            }
            _ => {}
        }
    }
    let total = |name: &str| totals.get(name).copied().unwrap_or(0.0);

    let registry = status.registry;
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"10\">\
         <title>sse-wasm status</title><style>body{{font-family:system-ui,sans-serif;margin:1.5em;color:#222}}\
         table{{border-collapse:collapse;margin-bottom:1.5em}}th,td{{border:1px solid #ccc;padding:.3em .6em;\
         text-align:left;vertical-align:top}}th{{background:#f0f0f0}}td.n{{text-align:right}}.bad{{color:#a00}}\
         h2{{margin-top:1.2em}}</style></head><body>\n<h1>sse-wasm {}</h1>\n<p>Up {} · {} function(s) served · \
         {} call(s) running · compile cache: {} hit(s), {} miss(es){}</p>\n",
        env!("CARGO_PKG_VERSION"),
        uptime(status.uptime),
        registry.entries().len(),
        status.running,
        total("sse_wasm_compile_cache_hits_total"),
        total("sse_wasm_compile_cache_misses_total"),
        if status.models {
            format!(
                " · model store: {} model(s), {} bytes",
                total("sse_wasm_models_kept"),
                total("sse_wasm_model_bytes")
            )
        } else {
            String::new()
        }
    );

    let failing = status.failing;
    page.push_str("<h2>Files that failed to load</h2>\n");
    if failing.is_empty() {
        page.push_str("<p>None.</p>\n");
    } else {
        page.push_str("<table><tr><th>File</th><th>Why</th></tr>\n");
        for (path, why) in failing {
            let file = file_name(&path.display().to_string());
            let _ = writeln!(page, "<tr><td class=\"bad\">{}</td><td>{}</td></tr>", escape(&file), escape(why));
        }
        page.push_str("</table>\n");
    }

    page.push_str(
        "<h2>Functions</h2>\n<table><tr><th>Function</th><th>Id</th><th>Type</th><th>Parameters → result</th>\
         <th>File</th><th>Calls</th><th>Errors</th><th>p50</th><th>p99</th></tr>\n",
    );
    for entry in registry.entries() {
        let def = entry.def();
        let params: Vec<String> = def.params.iter().map(|(n, t)| format!("{n}: {}", type_name(*t))).collect();
        let result = match &def.table {
            Some(table) => format!("table {}", table.name),
            None => type_name(def.return_type).to_owned(),
        };
        let kind = match def.function_type {
            FunctionType::Scalar => "scalar",
            FunctionType::Aggregation => "aggregation",
            FunctionType::Tensor => "tensor",
        };
        let stats = calls.get(&def.name);
        let (ok, errors) = stats.map_or((0.0, 0.0), |c| (c.ok, c.errors));
        let buckets = stats.map_or(&[][..], |c| &c.buckets[..]);
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{kind}</td><td>({}) → {}</td><td>{}</td><td class=\"n\">{}</td>\
             <td class=\"n{}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&def.name),
            entry.id,
            escape(&params.join(", ")),
            escape(&result),
            escape(&file_name(&entry.origin())),
            ok + errors,
            if errors > 0.0 { " bad" } else { "" },
            errors,
            seconds(quantile(buckets, 0.5)),
            seconds(quantile(buckets, 0.99)),
        );
    }
    page.push_str("</table>\n<h2>Script engines</h2>\n");
    let engines: Vec<_> = registry.script_engines().collect();
    if engines.is_empty() {
        page.push_str("<p>None: script functions (ScriptEval, ScriptAggr, …) are not offered.</p>\n");
    } else {
        page.push_str("<table><tr><th>Language</th><th>File</th><th>Evaluations</th><th>Errors</th></tr>\n");
        for engine in engines {
            let language = engine.scripts.as_ref().map_or("", |s| s.language.as_str());
            let (ok, errors) = scripts.get(language).copied().unwrap_or_default();
            let _ = writeln!(
                page,
                "<tr><td>#!{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n{}\">{errors}</td></tr>",
                escape(language),
                escape(&file_name(&engine.path.display().to_string())),
                ok + errors,
                if errors > 0.0 { " bad" } else { "" },
            );
        }
        page.push_str("</table>\n");
    }
    page.push_str("<p><a href=\"/metrics\">The metrics</a>, for Prometheus.</p>\n</body></html>\n");
    page
}

/// The file name of a path, for people.
fn file_name(path: &str) -> String {
    std::path::Path::new(path).file_name().map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned())
}

fn uptime(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        let buckets = [(0.001, 50.0), (0.01, 90.0), (0.1, 100.0), (f64::INFINITY, 100.0)];
        assert_eq!(quantile(&buckets, 0.5), Some(0.001));
        let p99 = quantile(&buckets, 0.99).expect("calls");
        assert!((p99 - 0.091).abs() < 1e-12, "{p99}");
        assert_eq!(quantile(&[(f64::INFINITY, 0.0)], 0.5), None);
    }

    #[test]
    fn samples_read_their_labels() {
        let (name, labels, value) = sample(r#"sse_wasm_calls_total{function="F",code="OK"} 3"#).expect("a sample");
        assert_eq!((name, labels["function"], labels["code"], value), ("sse_wasm_calls_total", "F", "OK", 3.0));
        assert_eq!(escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
    }
}

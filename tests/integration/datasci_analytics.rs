//! The analytics library (`guests/analytics/*.py`, served by the data-science engine) through
//! ExecuteFunction, compared with the same libraries — numpy, pandas, scipy, scikit-learn — run
//! natively outside the sandbox (`make analytics-reference`) on data the test generates; and the
//! option convention's errors. Its name starts with `datasci` so that it runs with the engine's
//! other tests, after the rest of the suite.

use std::io::Write;
use std::process::{Command, Stdio};

use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sse_wasm::pb::{self, DataType as T};
use sse_wasm::server::ServeOptions;
use sse_wasm::wasm::Limits;

use crate::util::*;

/// The library's files, as `make run` copies them into the functions folder.
const LIBRARY: [&str; 3] = ["correlation.py", "anomalies.py", "clustering.py"];

/// The data-science engine with the analytics library, once every function is served.
async fn server() -> TestServer {
    let server = TestServer::start_shared(&["datasci"], Limits::default(), ServeOptions::default()).await;
    let library = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/analytics");
    for file in LIBRARY {
        std::fs::copy(library.join(file), server.dir.path().join(file)).expect("copy the library");
    }
    let names = [
        "Cluster",
        "Cluster_Geo",
        "Control_Limits",
        "Correlation",
        "Correlation_Matrix",
        "Describe",
        "Isolation_Forest",
        "Outliers",
    ];
    eventually("the library is served", || async {
        let served = function_names(&server).await;
        names.iter().all(|n| served.iter().any(|s| s == n))
    })
    .await;
    server
}

/// Runs `script` in the reference Python (the libraries natively, outside any sandbox) with
/// `input` on its stdin; the numbers it prints, one per line.
fn native(script: &str, input: &str) -> Vec<f64> {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/.tools/reference/bin/python");
    assert!(
        python.exists(),
        "{} is missing: `make analytics-reference` (part of `make test`) installs it",
        python.display()
    );
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the reference python runs");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("input");
    let output = child.wait_with_output().expect("output");
    assert!(output.status.success(), "the reference failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8").lines().map(|l| l.trim().parse().expect("a number")).collect()
}

fn cell(value: &Cell) -> pb::Dual {
    match value {
        Cell::N(n) => pb::Dual { num_data: *n, str_data: String::new() },
        Cell::S(s) => pb::Dual { num_data: f64::NAN, str_data: s.clone() },
    }
}

enum Cell {
    N(f64),
    S(String),
}

/// Rows of cells in bundles of 97 (not a divisor of any test's row count).
fn request(rows: &[Vec<Cell>]) -> Vec<pb::BundledRows> {
    let rows: Vec<pb::Row> = rows.iter().map(|r| pb::Row { duals: r.iter().map(cell).collect() }).collect();
    bundles(rows, 97)
}

/// Equal as numbers, NaN equal to NaN, within `tolerance`.
fn assert_close(got: &[f64], expected: &[f64], tolerance: f64, what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}: {} values for {}", got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        let same = (g.is_nan() && e.is_nan()) || (g - e).abs() <= tolerance * e.abs().max(1.0);
        assert!(same, "{what}, row {}: {g} against {e} (native)", i + 1);
    }
}

/// Labels renumbered by first appearance (noise, -1, and nulls kept), so two clusterings that
/// differ only in their numbering compare equal.
fn canonical(labels: &[f64]) -> Vec<f64> {
    let mut seen: Vec<f64> = Vec::new();
    labels
        .iter()
        .map(|&l| {
            if l.is_nan() || l < 0.0 {
                return l;
            }
            let at = seen.iter().position(|&s| s == l).unwrap_or_else(|| {
                seen.push(l);
                seen.len() - 1
            });
            at as f64
        })
        .collect()
}

fn options(text: &str, rows: usize) -> impl Iterator<Item = Cell> + '_ {
    (0..rows).map(move |_| Cell::S(text.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlation_and_descriptive_statistics_match_scipy_and_pandas() {
    let server = server().await;
    let mut client = server.client().await;
    let mut rng = StdRng::seed_from_u64(7);
    let n = 500;
    let x: Vec<f64> = (0..n).map(|i| if i % 37 == 5 { f64::NAN } else { rng.r#gen::<f64>() * 10.0 }).collect();
    let y: Vec<f64> = x.iter().map(|v| (v * 0.7).powi(2) + rng.r#gen::<f64>() * 8.0).collect();
    let text: String = x.iter().zip(&y).map(|(a, b)| format!("{a} {b}\n")).collect();

    for method in ["pearson", "spearman", "kendall"] {
        let rows: Vec<Vec<Cell>> = x
            .iter()
            .zip(&y)
            .zip(options(&format!("method={method}"), n))
            .map(|((a, b), o)| vec![Cell::N(*a), Cell::N(*b), o])
            .collect();
        let answer = call(&mut client, "Correlation", request(&rows)).await.expect(method);
        let script = format!(
            "import sys, numpy, scipy.stats\n\
             d = numpy.loadtxt(sys.stdin); d = d[~numpy.isnan(d).any(axis=1)]\n\
             f = {{'pearson': scipy.stats.pearsonr, 'spearman': scipy.stats.spearmanr, 'kendall': scipy.stats.kendalltau}}\n\
             print(f['{method}'](d[:, 0], d[:, 1]).statistic)"
        );
        assert_close(&answer.numbers(), &native(&script, &text), 1e-12, method);
    }

    // Long rows (key, variable, value) into a matrix and a description, for LOAD ... EXTENSION.
    let names = ["Margin", "Sales", "Units"];
    let mut long = Vec::new();
    let mut long_text = String::new();
    for key in 0..200 {
        for (v, name) in names.iter().enumerate() {
            let value =
                if (key + v) % 23 == 0 { f64::NAN } else { rng.r#gen::<f64>() * (v + 1) as f64 + key as f64 / 50.0 };
            long.push(vec![
                Cell::S(format!("k{key}")),
                Cell::S((*name).to_owned()),
                Cell::N(value),
                Cell::S("method=spearman".into()),
            ]);
            long_text.push_str(&format!("k{key} {name} {value}\n"));
        }
    }
    let answer = call(&mut client, "Correlation_Matrix", request(&long)).await.expect("matrix");
    let header = answer.metadata.get_bin(pb::TABLE_DESCRIPTION).expect("a TableDescription");
    let table = pb::TableDescription::decode(header.to_bytes().expect("base64")).expect("decodes");
    let fields: Vec<&str> = table.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(fields, ["Variable1", "Variable2", "Correlation", "Observations"]);
    let pairs: Vec<String> =
        answer.rows().iter().map(|r| format!("{}-{}", r.duals[0].str_data, r.duals[1].str_data)).collect();
    assert_eq!(pairs.len(), 9);
    assert_eq!(pairs[1], "Margin-Sales");
    let got: Vec<f64> = answer.rows().iter().flat_map(|r| [r.duals[2].num_data, r.duals[3].num_data]).collect();
    let script = "import sys, pandas\n\
        d = pandas.read_csv(sys.stdin, sep=' ', names=['k', 'v', 'x'])\n\
        w = d.pivot_table(index='k', columns='v', values='x', aggfunc='mean')\n\
        for a in w.columns:\n\
        \x20   for b in w.columns:\n\
        \x20       p = w[[a, b]].dropna() if a != b else w[[a]].dropna()\n\
        \x20       print(w[a].corr(w[b], method='spearman')); print(len(p))";
    assert_close(&got, &native(script, &long_text), 1e-12, "Correlation_Matrix");

    let rows: Vec<Vec<Cell>> = long
        .into_iter()
        .map(|mut r| {
            r.truncate(3);
            r.remove(0);
            r
        })
        .collect();
    let answer = call(&mut client, "Describe", request(&rows)).await.expect("describe");
    assert!(answer.metadata.get_bin(pb::TABLE_DESCRIPTION).is_some(), "a table");
    assert_eq!(answer.strings(), names);
    let got: Vec<f64> =
        answer.rows().iter().flat_map(|r| r.duals[1..].iter().map(|d| d.num_data).collect::<Vec<_>>()).collect();
    let script = "import sys, pandas\n\
        d = pandas.read_csv(sys.stdin, sep=' ', names=['k', 'v', 'x'])\n\
        for v in d.groupby('v', sort=True)['x'].describe().to_numpy().ravel(): print(v)";
    assert_close(&got, &native(script, &long_text), 1e-12, "Describe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomalies_match_numpy_and_scikit_learn() {
    let server = server().await;
    let mut client = server.client().await;
    let mut rng = StdRng::seed_from_u64(11);
    let n = 400;
    let values: Vec<f64> = (0..n)
        .map(|i| match i {
            17 => f64::NAN,
            50 | 300 => 40.0 + f64::from(i) / 100.0,
            _ => rng.r#gen::<f64>() * 10.0,
        })
        .collect();
    let text: String = values.iter().map(|v| format!("{v}\n")).collect();
    let column = |o: &str| -> Vec<Vec<Cell>> {
        values.iter().zip(options(o, n as usize)).map(|(v, o)| vec![Cell::N(*v), o]).collect()
    };

    let scores = [
        ("method=zscore, return=score", "(x - k.mean()) / k.std(ddof=1)"),
        ("method=robust, return=score", "0.6745 * (x - numpy.median(k)) / numpy.median(abs(k - numpy.median(k)))"),
    ];
    for (o, formula) in scores {
        let answer = call(&mut client, "Outliers", request(&column(o))).await.expect(o);
        let script = format!(
            "import sys, numpy\nx = numpy.loadtxt(sys.stdin); k = x[~numpy.isnan(x)]\nfor v in {formula}: print(v)"
        );
        assert_close(&answer.numbers(), &native(&script, &text), 1e-12, o);
    }
    let answer = call(&mut client, "Outliers", request(&column("method=iqr, threshold=1.5"))).await.expect("iqr");
    let script = "import sys, numpy\nx = numpy.loadtxt(sys.stdin); q1, q3 = numpy.nanpercentile(x, [25, 75])\n\
        for v in x: print('nan' if v != v else float(v < q1 - 1.5 * (q3 - q1) or v > q3 + 1.5 * (q3 - q1)))";
    let flags = answer.numbers();
    assert_close(&flags, &native(script, &text), 0.0, "iqr flags");
    assert_eq!(flags.iter().filter(|&&f| f == 1.0).count(), 2, "the two planted outliers");

    for (o, line) in [("return=ucl", "c + s"), ("return=lcl", "c - s"), ("return=center", "c")] {
        let answer = call(&mut client, "Control_Limits", request(&column(o))).await.expect(o);
        let script = format!(
            "import sys, numpy\nx = numpy.loadtxt(sys.stdin); k = x[~numpy.isnan(x)]\n\
             c = k.mean(); s = 2.66 * numpy.abs(numpy.diff(k)).mean()\nfor _ in x: print({line})"
        );
        assert_close(&answer.numbers(), &native(&script, &text), 1e-12, o);
    }

    // Several features in one parameter, as Qlik sends them: `A & ';' & B`.
    let features: Vec<(f64, f64)> = (0..300)
        .map(|i| if i % 100 == 99 { (25.0, -25.0) } else { (rng.r#gen::<f64>(), rng.r#gen::<f64>() * 2.0) })
        .collect();
    let feature_text: String = features.iter().map(|(a, b)| format!("{a} {b}\n")).collect();
    for (o, what) in [("return=score, seed=3", "score_samples(x)"), ("contamination=0.01, seed=3", "predict(x) == -1")]
    {
        let rows: Vec<Vec<Cell>> =
            features.iter().zip(options(o, 300)).map(|((a, b), o)| vec![Cell::S(format!("{a};{b}")), o]).collect();
        let answer = call(&mut client, "Isolation_Forest", request(&rows)).await.expect(o);
        let contamination = if o.contains("contamination") { "0.01" } else { "'auto'" };
        let script = format!(
            "import sys, numpy, sklearn.ensemble\nx = numpy.loadtxt(sys.stdin)\n\
             f = sklearn.ensemble.IsolationForest(n_estimators=100, contamination={contamination}, random_state=3).fit(x)\n\
             for v in f.{what}: print(float(v))"
        );
        assert_close(&answer.numbers(), &native(&script, &feature_text), 1e-9, o);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_match_scikit_learn() {
    let server = server().await;
    let mut client = server.client().await;
    let mut rng = StdRng::seed_from_u64(5);
    let centres = [(0.0, 0.0, 0.0), (10.0, 10.0, 0.0), (0.0, 12.0, 10.0)];
    let points: Vec<[f64; 3]> = (0..300)
        .map(|i| {
            let (a, b, c) = centres[i % 3];
            [a + rng.r#gen::<f64>(), b + rng.r#gen::<f64>(), c + rng.r#gen::<f64>()]
        })
        .collect();
    let text: String = points.iter().map(|p| format!("{} {} {}\n", p[0], p[1], p[2])).collect();
    let rows = |o: &str| -> Vec<Vec<Cell>> {
        points
            .iter()
            .zip(options(o, points.len()))
            .map(|(p, o)| vec![Cell::S(format!("{};{};{}", p[0], p[1], p[2])), o])
            .collect()
    };
    let scaled = "import sys, numpy, sklearn.cluster, sklearn.preprocessing\n\
        x = sklearn.preprocessing.StandardScaler().fit_transform(numpy.loadtxt(sys.stdin))\n";
    let cases = [
        ("method=kmeans, k=3", "sklearn.cluster.KMeans(n_clusters=3, n_init=10, random_state=0).fit_predict(x)"),
        ("method=dbscan, eps=0.5, min_samples=5", "sklearn.cluster.DBSCAN(eps=0.5, min_samples=5).fit_predict(x)"),
        (
            "method=hdbscan, min_cluster_size=20",
            "sklearn.cluster.HDBSCAN(min_cluster_size=20, min_samples=5).fit_predict(x)",
        ),
    ];
    for (o, model) in cases {
        let answer = call(&mut client, "Cluster", request(&rows(o))).await.expect(o);
        let expected = native(&format!("{scaled}for v in {model}: print(v)"), &text);
        assert_eq!(canonical(&answer.numbers()), canonical(&expected), "{o}");
    }
    // k chosen by silhouette finds the three groups.
    let answer = call(&mut client, "Cluster", request(&rows("method=kmeans"))).await.expect("auto k");
    let labels = canonical(&answer.numbers());
    assert_eq!(labels.iter().cloned().fold(0.0, f64::max), 2.0, "three clusters");
    assert!(labels.chunks(3).all(|c| c == [0.0, 1.0, 2.0]), "each point with its centre");

    // Places by great-circle distance: two towns 1,000 km apart and a lone farm.
    let mut places: Vec<(f64, f64)> =
        (0..30).map(|i| (48.85 + f64::from(i % 6) * 0.002, 2.35 + f64::from(i / 6) * 0.002)).collect();
    places.extend((0..30).map(|i| (41.90 + f64::from(i % 6) * 0.002, 12.49 + f64::from(i / 6) * 0.002)));
    places.push((45.0, 7.0));
    let place_text: String = places.iter().map(|(a, b)| format!("{a} {b}\n")).collect();
    let rows: Vec<Vec<Cell>> = places
        .iter()
        .zip(options("eps_km=1.5, min_samples=4", places.len()))
        .map(|((a, b), o)| vec![Cell::N(*a), Cell::N(*b), o])
        .collect();
    let answer = call(&mut client, "Cluster_Geo", request(&rows)).await.expect("geo");
    let script = "import sys, numpy, sklearn.cluster\nx = numpy.radians(numpy.loadtxt(sys.stdin))\n\
        m = sklearn.cluster.DBSCAN(eps=1.5 / 6371.0088, min_samples=4, metric='haversine', algorithm='ball_tree')\n\
        for v in m.fit_predict(x): print(v)";
    let labels = answer.numbers();
    assert_eq!(canonical(&labels), canonical(&native(script, &place_text)), "Cluster_Geo");
    assert_eq!((labels[0], labels[30], labels[60]), (0.0, 1.0, -1.0), "two towns and noise");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_are_strict_and_name_what_is_allowed() {
    let server = server().await;
    let mut client = server.client().await;
    let numbers_with = |o: &str| -> Vec<Vec<Cell>> {
        (0..10).map(|i| vec![Cell::N(f64::from(i)), Cell::N(f64::from(i * i)), Cell::S(o.to_owned())]).collect()
    };
    let cases: [(&str, &[&str]); 5] = [
        ("method=pearsno", &["method='pearsno'", "pearson, spearman, kendall"]),
        ("methd=pearson", &["unknown option 'methd'", "options: method"]),
        ("method=pearson, method=kendall", &["method is given twice"]),
        ("method", &["'method' is not key=value"]),
        ("method=pearson;", &["method='pearson;'"]),
    ];
    for (o, parts) in cases {
        let result = call(&mut client, "Correlation", request(&numbers_with(o))).await;
        assert_status(result, tonic::Code::InvalidArgument, &[&["Correlation"], parts].concat());
    }
    let answer =
        call(&mut client, "Correlation", request(&numbers_with(" Method = Kendall "))).await.expect("spaces, case");
    assert!((answer.numbers()[0] - 1.0).abs() < 1e-12);

    let rows = |o: &str, features: &[&str]| -> Vec<Vec<Cell>> {
        features.iter().map(|f| vec![Cell::S((*f).to_owned()), Cell::S(o.to_owned())]).collect()
    };
    let result = call(&mut client, "Cluster", request(&rows("k=two", &["1;2", "3;4"]))).await;
    assert_status(result, tonic::Code::InvalidArgument, &["k='two'", "a whole number"]);
    let result = call(&mut client, "Cluster", request(&rows("k=2", &["1;2", "3;4;5"]))).await;
    assert_status(result, tonic::Code::InvalidArgument, &["row 2 has 3 features, row 1 has 2"]);
    let result = call(&mut client, "Cluster", request(&rows("k=2", &["1;2", "3;x"]))).await;
    assert_status(result, tonic::Code::InvalidArgument, &["row 2, feature 2", "'x' is not a number"]);
    let result =
        call(&mut client, "Cluster", request(&rows("method=dbscan, return=probability", &["1;2", "3;4"]))).await;
    assert_status(result, tonic::Code::InvalidArgument, &["return=probability", "hdbscan"]);
    let mixed: Vec<Vec<Cell>> =
        vec![vec![Cell::S("1;2".into()), Cell::S("k=1".into())], vec![Cell::S("3;4".into()), Cell::S("k=2".into())]];
    let result = call(&mut client, "Cluster", request(&mixed)).await;
    assert_status(result, tonic::Code::InvalidArgument, &["the options differ between rows"]);
}

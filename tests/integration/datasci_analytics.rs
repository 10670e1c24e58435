//! The analytics library (`guests/analytics/*.py`, served by the data-science engine) through
//! ExecuteFunction, compared with the same libraries — numpy, pandas, scipy, scikit-learn — run
//! natively outside the sandbox (`make analytics-reference`) on data the test generates; and the
//! option convention's errors. Its name starts with `datasci` so that it runs with the engine's
//! other tests, after the rest of the suite.

use std::io::Write;
use std::process::{Command, Stdio};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sse_wasm::pb;
use sse_wasm::server::ServeOptions;
use sse_wasm::wasm::Limits;

use crate::util::*;

/// The library's files, as `make run` copies them into the functions folder.
const LIBRARY: [&str; 6] =
    ["correlation.py", "anomalies.py", "clustering.py", "forecasting.py", "prediction.py", "association.py"];

/// The data-science engine with the analytics library, once every function is served.
async fn server() -> TestServer {
    let server = TestServer::start_shared(&["datasci"], Limits::default(), ServeOptions::default()).await;
    let library = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/analytics");
    for file in LIBRARY {
        std::fs::copy(library.join(file), server.dir.path().join(file)).expect("copy the library");
    }
    let names = [
        "Association_Rules",
        "Classify",
        "Classify_Probability",
        "Cluster",
        "Cluster_Geo",
        "Confusion_Matrix",
        "Control_Limits",
        "Correlation",
        "Correlation_Matrix",
        "Describe",
        "Forecast",
        "Forecast_Table",
        "Forecast_X",
        "Importances",
        "Isolation_Forest",
        "Outliers",
        "Predict",
        "Prediction_Metrics",
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
pub(crate) fn native(script: &str, input: &str) -> Vec<f64> {
    native_lines(script, input).iter().map(|l| l.trim().parse().expect("a number")).collect()
}

/// Runs `script` in the reference Python with `input` on its stdin; the lines it prints.
pub(crate) fn native_lines(script: &str, input: &str) -> Vec<String> {
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
    String::from_utf8(output.stdout).expect("utf-8").lines().map(str::to_owned).collect()
}

fn cell(value: &Cell) -> pb::Dual {
    match value {
        Cell::N(n) => pb::Dual { num_data: *n, str_data: String::new() },
        Cell::S(s) => pb::Dual { num_data: f64::NAN, str_data: s.clone() },
    }
}

pub(crate) enum Cell {
    N(f64),
    S(String),
}

/// Rows of cells in bundles of 97 (not a divisor of any test's row count).
pub(crate) fn request(rows: &[Vec<Cell>]) -> Vec<pb::BundledRows> {
    let rows: Vec<pb::Row> = rows.iter().map(|r| pb::Row { duals: r.iter().map(cell).collect() }).collect();
    bundles(rows, 97)
}

/// Equal as numbers, NaN equal to NaN (and an infinity to itself), within `tolerance`.
pub(crate) fn assert_close(got: &[f64], expected: &[f64], tolerance: f64, what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}: {} values for {}", got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        let same = g == e || (g.is_nan() && e.is_nan()) || (g - e).abs() <= tolerance * e.abs().max(1.0);
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
        let expected = native(&script, &text);
        assert_close(&answer.numbers(), &expected, 1e-12, method);
        // The same pairs with the null rows left out before the call: the same coefficient.
        let whole: Vec<Vec<Cell>> =
            rows.into_iter().filter(|row| matches!(row[0], Cell::N(a) if !a.is_nan())).collect();
        let answer = call(&mut client, "Correlation", request(&whole)).await.expect(method);
        assert_close(&answer.numbers(), &expected, 1e-12, method);
    }

    // Spearman's ranks with ties everywhere: small integers (-0 and 0 among them, equal values
    // that sort apart by their bits), infinities, and a column of repeated values.
    let ties: Vec<(f64, f64)> = (0..400)
        .map(|i| {
            let a = [-0.0, 0.0, 1.0, -2.0, 3.0, f64::INFINITY, f64::NEG_INFINITY][rng.gen_range(0..7)];
            let b = if i % 3 == 0 { 5.0 } else { f64::from(rng.gen_range(-2_i32..2)) - a.clamp(-4.0, 4.0) };
            (a, b)
        })
        .collect();
    let rows: Vec<Vec<Cell>> = ties
        .iter()
        .zip(options("method=spearman", ties.len()))
        .map(|(&(a, b), o)| vec![Cell::N(a), Cell::N(b), o])
        .collect();
    let answer = call(&mut client, "Correlation", request(&rows)).await.expect("ties");
    let script = "import sys, numpy, scipy.stats\n\
        d = numpy.loadtxt(sys.stdin)\n\
        print(scipy.stats.spearmanr(d[:, 0], d[:, 1]).statistic)";
    let text: String = ties.iter().map(|(a, b)| format!("{a} {b}\n")).collect();
    assert_close(&answer.numbers(), &native(script, &text), 1e-12, "spearman with ties");

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
    assert_eq!(answer.table_fields(), ["Variable1", "Variable2", "Correlation", "Observations"]);
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
    // Python reads "inf" as a number; scikit-learn would refuse it without saying where.
    let result = call(&mut client, "Cluster", request(&rows("k=2", &["1;2", "3;4", "-Infinity;5"]))).await;
    assert_status(result, tonic::Code::InvalidArgument, &["row 3, feature 1", "'-Infinity' is not a finite number"]);
    // An infinite target among numbers is refused, not read as one class among 30 (task=auto).
    let targets: Vec<Vec<Cell>> = (0..30)
        .map(|i| {
            let target = if i == 4 { "inf".to_owned() } else { format!("{}.5", i % 7) };
            vec![Cell::S(target), Cell::S(format!("{};{}", i % 5, i % 3)), Cell::S(String::new())]
        })
        .collect();
    let result = call(&mut client, "Prediction_Metrics", request(&targets)).await;
    assert_status(result, tonic::Code::InvalidArgument, &["row 5: target inf is not a finite number"]);
    let places = |latitude: f64| -> Vec<Vec<Cell>> {
        vec![
            vec![Cell::N(48.85), Cell::N(2.35), Cell::S(String::new())],
            vec![Cell::N(latitude), Cell::N(2.35), Cell::S(String::new())],
        ]
    };
    let result = call(&mut client, "Cluster_Geo", request(&places(148.85))).await;
    assert_status(result, tonic::Code::InvalidArgument, &["row 2: latitude 148.85 is not from -90 to 90 degrees"]);
    let result =
        call(&mut client, "Cluster", request(&rows("method=dbscan, return=probability", &["1;2", "3;4"]))).await;
    assert_status(result, tonic::Code::InvalidArgument, &["return=probability", "hdbscan"]);
    let mixed: Vec<Vec<Cell>> =
        vec![vec![Cell::S("1;2".into()), Cell::S("k=1".into())], vec![Cell::S("3;4".into()), Cell::S("k=2".into())]];
    let result = call(&mut client, "Cluster", request(&mixed)).await;
    assert_status(result, tonic::Code::InvalidArgument, &["the options differ between rows"]);

    // Numbers out of their range fail by name, before any library sees them (scikit-learn would
    // name its own parameter, or take a negative threshold and flag every row).
    let points: Vec<&str> = vec!["1;2", "3;4", "5;6", "7;8"];
    let cases: [(&str, &[&str]); 4] = [
        ("k=0", &["option k=0", "expected a whole number at least 1"]),
        ("method=dbscan, eps=-1", &["option eps=-1", "expected a number above 0"]),
        ("method=hdbscan, min_cluster_size=1", &["option min_cluster_size=1", "at least 2"]),
        ("seed=-1", &["option seed=-1", "expected a whole number from 0 to 4294967295"]),
    ];
    for (o, parts) in cases {
        let result = call(&mut client, "Cluster", request(&rows(o, &points))).await;
        assert_status(result, tonic::Code::InvalidArgument, &[&["Cluster"], parts].concat());
    }
    let values = |o: &str| -> Vec<Vec<Cell>> {
        (0..20).map(|i| vec![Cell::N(f64::from(i % 7)), Cell::S(o.to_owned())]).collect()
    };
    let result = call(&mut client, "Outliers", request(&values("threshold=-1"))).await;
    assert_status(result, tonic::Code::InvalidArgument, &["option threshold=-1", "expected a number above 0"]);
    let baskets = |o: &str| -> Vec<Vec<Cell>> {
        (0..20)
            .map(|i| vec![Cell::S(format!("t{}", i / 2)), Cell::S(format!("i{}", i % 3)), Cell::S(o.to_owned())])
            .collect()
    };
    let result = call(&mut client, "Association_Rules", request(&baskets("min_confidence=1.5"))).await;
    assert_status(result, tonic::Code::InvalidArgument, &["option min_confidence=1.5", "a number from 0 to 1"]);
    let result = call(&mut client, "Association_Rules", request(&baskets("max_rules=0"))).await;
    assert_status(result, tonic::Code::InvalidArgument, &["option max_rules=0", "at least 1"]);
    let series = |o: &str| -> Vec<Vec<Cell>> {
        (0..30_i64).map(|i| vec![Cell::N(month_start(i)), Cell::N((i % 5) as f64), Cell::S(o.to_owned())]).collect()
    };
    let result = call(&mut client, "Forecast_Table", request(&series("periods=1000000000"))).await;
    assert_status(result, tonic::Code::InvalidArgument, &["option periods=1000000000", "from 0 to 100000"]);
    // An order beyond the history would otherwise ask for memory by the exabyte.
    let result = call(&mut client, "Forecast", request(&series("method=arima, d=1000000000"))).await;
    assert_status(result, tonic::Code::InvalidArgument, &["options p, d, q, sp, sd and sq reach 1000000002", "30"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_with_nothing_to_model_answer_nulls_or_name_what_is_missing() {
    let server = server().await;
    let mut client = server.client().await;
    let rows = |o: &str, features: &[&str]| -> Vec<Vec<Cell>> {
        features.iter().map(|f| vec![Cell::S((*f).to_owned()), Cell::S(o.to_owned())]).collect()
    };
    let all_null = |answer: Vec<f64>, rows: usize, what: &str| {
        assert_eq!(answer.len(), rows, "{what}: a value per row");
        assert!(answer.iter().all(|v| v.is_nan()), "{what}: every row null, got {answer:?}");
    };
    // Rows that all lack a feature answer null, as one such row among others does (scikit-learn
    // would refuse an empty matrix in its own words).
    let nulls = ["", "-", ";", "1;"];
    let answer = call(&mut client, "Isolation_Forest", request(&rows("", &nulls[..2]))).await.expect("forest");
    all_null(answer.numbers(), 2, "Isolation_Forest");
    let answer = call(&mut client, "Cluster", request(&rows("k=2", &nulls[2..]))).await.expect("cluster");
    all_null(answer.numbers(), 2, "Cluster");
    let places: Vec<Vec<Cell>> = vec![
        vec![Cell::N(f64::NAN), Cell::N(2.35), Cell::S(String::new())],
        vec![Cell::N(48.85), Cell::N(f64::NAN), Cell::S(String::new())],
    ];
    let answer = call(&mut client, "Cluster_Geo", request(&places)).await.expect("geo");
    all_null(answer.numbers(), 2, "Cluster_Geo");

    // A call of no rows (Qlik sends none; a client may): no rows back, or the aggregation's null.
    for function in ["Cluster", "Outliers", "Correlation_Matrix", "Association_Rules"] {
        let answer = call(&mut client, function, Vec::new()).await.expect(function);
        assert!(answer.rows().is_empty(), "{function}: {answer:?}");
    }
    let answer = call(&mut client, "Correlation", Vec::new()).await.expect("Correlation");
    all_null(answer.numbers(), 1, "Correlation of nothing");
    let result = call(&mut client, "Forecast", Vec::new()).await;
    assert_status(result, tonic::Code::InvalidArgument, &["a forecast needs at least 3 known values, not 0"]);

    // Rows that are all one point are one cluster when k is chosen (no silhouette to compare), and
    // none of them is an anomaly (scikit-learn's automatic threshold, equal to their score but for
    // rounding, flags every one of 50 or more).
    let same = ["1.5;2"; 60];
    let answer = call(&mut client, "Cluster", request(&rows("", &same[..10]))).await.expect("one point");
    assert_eq!(answer.numbers(), vec![0.0; 10], "one cluster");
    let answer = call(&mut client, "Isolation_Forest", request(&rows("", &same))).await.expect("one point");
    assert_eq!(answer.numbers(), vec![0.0; 60], "no anomaly");

    // Too few rows for HDBSCAN's min_samples: named by the option, not by scikit-learn.
    let result = call(&mut client, "Cluster", request(&rows("method=hdbscan", &["1;2", "3;4", "5;6"]))).await;
    assert_status(
        result,
        tonic::Code::InvalidArgument,
        &["Cluster", "method=hdbscan needs at least 5 rows with every feature (min_samples=5), not 3"],
    );

    // An infinite value would make the mean, spread and limits infinite or NaN and flag nothing.
    let values = |v: f64, o: &str| -> Vec<Vec<Cell>> {
        (0..8).map(|i| vec![Cell::N(if i == 5 { v } else { f64::from(i) }), Cell::S(o.to_owned())]).collect()
    };
    for (function, value, o) in
        [("Control_Limits", f64::INFINITY, "return=flag"), ("Outliers", f64::NEG_INFINITY, "method=zscore")]
    {
        let result = call(&mut client, function, request(&values(value, o))).await;
        let message = format!("row 6: value {} is not a finite number", if value > 0.0 { "inf" } else { "-inf" });
        assert_status(result, tonic::Code::InvalidArgument, &[function, &message]);
    }

    // Options the data cannot meet are named as options (statsmodels would speak of `endog`,
    // scikit-learn of `train_size`); features beyond float32's range by row and feature (the trees
    // would refuse them unnamed, scaling would overflow).
    // `months` of values 0, 1, … `cycle` - 1 over and over, the last ones null (to forecast).
    let series = |months: i64, known: i64, cycle: i64, o: &str| -> Vec<Vec<Cell>> {
        (0..months)
            .map(|i| {
                let value = if i < known { (i % cycle) as f64 } else { f64::NAN };
                vec![Cell::N(month_start(i)), Cell::N(value), Cell::S(o.to_owned())]
            })
            .collect()
    };
    let held_out: Vec<Vec<Cell>> = (0..4)
        .map(|i| vec![Cell::S(format!("{i}")), Cell::S(format!("{i};{}", i * i)), Cell::S("test_size=0.9".into())])
        .collect();
    let huge: Vec<Vec<Cell>> = ["1;2", "3;4", "1e39;5", "2;2"]
        .iter()
        .enumerate()
        .map(|(i, f)| vec![Cell::N(i as f64), Cell::S((*f).into()), Cell::S("method=forest".into())])
        .collect();
    let refused = [
        (
            "Forecast",
            series(30, 27, 5, "trend=mul"),
            "option trend=mul needs every value above 0, and the history holds 0",
        ),
        (
            "Prediction_Metrics",
            held_out,
            "option test_size=0.9 holds out every one of the 4 rows with a target and every feature",
        ),
        (
            "Forecast",
            series(6, 5, 3, "seasonal=add, seasonal_periods=3"),
            "option seasonal=add needs two seasons of history (6 periods with seasonal_periods=3), and the history has 5",
        ),
        ("Predict", huge, "row 3, feature 1: '1e39' is beyond ±3.402823e+38, the range models compute in"),
    ];
    for (function, rows, message) in refused {
        let result = call(&mut client, function, request(&rows)).await;
        assert_status(result, tonic::Code::InvalidArgument, &[function, message]);
    }
    // A huge value is an outlier by z-score too (its square overflowed the standard deviation).
    let huge: Vec<Vec<Cell>> = (0..12)
        .map(|i| {
            vec![Cell::N(if i == 6 { 1e200 } else { 2.0 + f64::from(i % 3) / 10.0 }), Cell::S("method=zscore".into())]
        })
        .collect();
    let flags = call(&mut client, "Outliers", request(&huge)).await.expect("huge").numbers();
    assert_eq!(flags, (0..12).map(|i| f64::from(u8::from(i == 6))).collect::<Vec<_>>(), "the huge value alone");
    // No known value: nulls, whichever method (the quartiles of nothing failed).
    let answer = call(&mut client, "Outliers", request(&values(f64::NAN, "method=iqr")[5..6])).await.expect("iqr");
    all_null(answer.numbers(), 1, "Outliers");
    // A class only the held-out rows hold is a row of the matrix, never predicted.
    let rows: Vec<Vec<Cell>> = ["a", "a", "a", "b", "b", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, c)| vec![Cell::S((*c).into()), Cell::S(format!("{i}")), Cell::S("test_size=0.15, seed=0".into())])
        .collect();
    let answer = call(&mut client, "Confusion_Matrix", request(&rows)).await.expect("a class held out");
    let actual = answer.strings();
    assert_eq!(actual.len(), 9, "three classes, each against each: {actual:?}");
    assert!(actual.iter().any(|a| a == "c"), "the held-out class is an actual class: {actual:?}");
}

/// `analytics_inputs.py`: thousands of calls of every function on small random inputs a client
/// can send, natively. A refusal must be a ValueError raised in the library's own files (which
/// name the row or option), not numpy's, scikit-learn's or statsmodels' words, nor another
/// exception (an IndexError, a KeyError) that would reach Qlik's users as such.
#[test]
fn every_refusal_of_random_hostile_inputs_is_in_the_librarys_words() {
    for seed in ["1", "2"] {
        let found = sweep(&[seed, "3000"]);
        assert!(found.is_empty(), "refusals not in the library's words (seed {seed}):\n{found}");
    }
}

/// What `analytics_inputs.py` prints, run in the reference Python with `args` after the root.
fn sweep(args: &[&str]) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let python = std::path::Path::new(root).join("guests/.tools/reference/bin/python");
    assert!(python.exists(), "{} is missing: `make analytics-reference` installs it", python.display());
    let output = Command::new(&python)
        .arg(std::path::Path::new(root).join("tests/integration/analytics_inputs.py"))
        .arg(root)
        .args(args)
        .output()
        .expect("the reference python runs");
    assert!(output.status.success(), "the sweep failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// One call of `analytics_inputs.py --cases`: the function, its columns, and its native outcome
/// (the rows it answered, or the message it refused with).
struct NativeCase {
    function: String,
    columns: Vec<Vec<Cell>>,
    outcome: Result<Vec<Vec<Cell>>, String>,
}

fn native_cases(seed: &str, calls: &str) -> Vec<NativeCase> {
    let number = |text: &str| text.parse::<f64>().unwrap_or_else(|_| panic!("a number: {text:?}"));
    let typed = |text: &str| match text.split_once(':') {
        Some(("N", n)) => Cell::N(number(n)),
        Some(("S", s)) => Cell::S(s.to_owned()),
        _ => panic!("a typed cell: {text:?}"),
    };
    let mut cases = Vec::new();
    for line in sweep(&[seed, calls, "--cases"]).lines() {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "CASE" => {
                cases.push(NativeCase { function: rest.to_owned(), columns: Vec::new(), outcome: Ok(Vec::new()) })
            }
            "N" => {
                cases.last_mut().expect("a case").columns.push(rest.split('\t').map(|n| Cell::N(number(n))).collect())
            }
            "S" => {
                cases.last_mut().expect("a case").columns.push(rest.split('\t').map(|s| Cell::S(s.into())).collect())
            }
            "ERROR" => cases.last_mut().expect("a case").outcome = Err(rest.to_owned()),
            "ROW" => {
                let row = rest.split('\t').map(typed).collect();
                cases.last_mut().expect("a case").outcome.as_mut().expect("rows").push(row);
            }
            "END" => {}
            _ => panic!("an unknown line: {line:?}"),
        }
    }
    cases
}

/// The sweep's calls (at least one row each) sent through gRPC to the engine: each answers the
/// same rows as the same function natively (numbers within 1e-9, labels up to their numbering;
/// forecasts by shape only, statsmodels' optimizer stopping apart on other builds), or is refused
/// with INVALID_ARGUMENT and the same message. What the host and the engine's driver do to Qlik's
/// values on the way (nulls, `-`, -0, 1e300, empty texts) is thereby compared with none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_hostile_inputs_answer_through_grpc_as_natively() {
    let server = server().await;
    let mut client = server.client().await;
    let cases = native_cases("4", "400");
    assert!(cases.len() > 300, "{} cases", cases.len());
    for (n, case) in cases.iter().enumerate() {
        let rows = case.columns[0].len();
        let request_rows: Vec<Vec<Cell>> =
            (0..rows).map(|i| case.columns.iter().map(|c| clone(&c[i])).collect()).collect();
        let what = format!("case {n}: {}", case.function);
        let result = call(&mut client, &case.function, request(&request_rows)).await;
        let expected = match &case.outcome {
            Err(message) => {
                assert_status(result, tonic::Code::InvalidArgument, &[&case.function, message]);
                continue;
            }
            Ok(expected) => expected,
        };
        let answer = result.unwrap_or_else(|status| panic!("{what}: {status:?}, natively {} rows", expected.len()));
        let got = answer.rows();
        assert_eq!(got.len(), expected.len(), "{what}: rows");
        if case.function.starts_with("Forecast") {
            continue;
        }
        let labels = case.function.starts_with("Cluster");
        for column in 0..expected.first().map_or(0, Vec::len) {
            let (mut got_numbers, mut numbers) = (Vec::new(), Vec::new());
            for (row, (g, e)) in got.iter().zip(expected).enumerate() {
                match &e[column] {
                    Cell::N(v) => {
                        got_numbers.push(g.duals[column].num_data);
                        numbers.push(*v);
                    }
                    Cell::S(text) => assert_eq!(&g.duals[column].str_data, text, "{what}, row {}", row + 1),
                }
            }
            if labels {
                (got_numbers, numbers) = (canonical(&got_numbers), canonical(&numbers));
            }
            assert_close(&got_numbers, &numbers, 1e-9, &what);
        }
    }
}

/// Qlik's serial date (days since 30 December 1899) of the first of month `m` (0: January 2019).
fn month_start(m: i64) -> f64 {
    let mut days = 43_466; // 1 January 2019
    for k in 0..m {
        let (year, month) = (2019 + k / 12, k % 12);
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        days += [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month as usize];
    }
    days as f64
}

/// Answers of rows sent in `order` (row i sent at position order⁻¹), put back in date order.
fn in_date_order(answer: &[f64], order: &[usize]) -> Vec<f64> {
    let mut sorted = vec![f64::NAN; answer.len()];
    for (sent, &row) in order.iter().enumerate() {
        sorted[row] = answer[sent];
    }
    sorted
}

/// How near a fitted model's values come to the native ones: statsmodels' optimizers stop a
/// little apart on another numpy build (the engine's 2.5 against the reference's).
const FITTED: f64 = 1e-3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecasts_match_statsmodels() {
    let server = server().await;
    let mut client = server.client().await;
    let mut rng = StdRng::seed_from_u64(3);
    let (n, ahead) = (60, 6);
    let promotion: Vec<f64> = (0..n + ahead).map(|i| f64::from(u8::from(i % 5 == 0))).collect();
    let values: Vec<f64> = (0..n)
        .map(|i| {
            let t = i as f64;
            100.0
                + 0.8 * t
                + 10.0 * (t * std::f64::consts::TAU / 12.0).sin()
                + 6.0 * promotion[i]
                + rng.r#gen::<f64>() * 4.0
        })
        .collect();
    let dates: Vec<f64> = (0..(n + ahead) as i64).map(month_start).collect();
    let history: String = values.iter().map(|v| format!("{v}\n")).collect();
    // A chart sends its rows in its own sort order: the function reads them by date.
    let mut order: Vec<usize> = (0..n + ahead).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.gen_range(0..=i));
    }
    let chart = |o: &str, features: bool| -> Vec<Vec<Cell>> {
        order
            .iter()
            .map(|&i| {
                let mut row = vec![Cell::N(dates[i]), Cell::N(values.get(i).copied().unwrap_or(f64::NAN))];
                if features {
                    row.push(Cell::S(promotion[i].to_string()));
                }
                row.push(Cell::S(o.to_owned()));
                row
            })
            .collect()
    };
    let ets = "import sys, warnings, numpy, pandas\nwarnings.simplefilter('ignore')\n\
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel\n\
        y = pandas.Series(numpy.loadtxt(sys.stdin))\n\
        r = ETSModel(y, error='add', trend='add', seasonal='add', seasonal_periods=12).fit(disp=False)\n\
        p = r.get_prediction(start=0, end=len(y) - 1).summary_frame(alpha=ALPHA)\n\
        f = r.get_prediction(start=len(y), end=len(y) + 5).summary_frame(alpha=ALPHA)\n";
    let arima = "import sys, warnings, numpy\nwarnings.simplefilter('ignore')\n\
        from statsmodels.tsa.statespace.sarimax import SARIMAX\n\
        y = numpy.loadtxt(sys.stdin)\n\
        r = SARIMAX(y, order=(1, 1, 1), seasonal_order=(0, 1, 1, 12)).fit(disp=False)\n\
        p = r.get_prediction(start=0, end=len(y) - 1).summary_frame(alpha=0.05)\n\
        f = r.get_forecast(6).summary_frame(alpha=0.05)\n";
    let cases = [
        ("method=ets", ets.replace("ALPHA", "0.05"), "for v in list(p['mean']) + list(f['mean']): print(v)"),
        (
            "method=ets, return=upper, level=0.9",
            ets.replace("ALPHA", "0.1"),
            "for v in list(p['pi_upper']) + list(f['pi_upper']): print(v)",
        ),
        (
            "method=ets, return=residual",
            ets.replace("ALPHA", "0.05"),
            "for v in list(y - p['mean']) + [float('nan')] * 6: print(v)",
        ),
        (
            "method=arima, sd=1, sq=1, return=lower",
            arima.to_owned(),
            "for v in list(p['mean_ci_lower']) + list(f['mean_ci_lower']): print(v)",
        ),
    ];
    for (o, fit, print) in &cases {
        let answer = call(&mut client, "Forecast", request(&chart(o, false))).await.expect(o);
        let (mut got, mut expected) =
            (in_date_order(&answer.numbers(), &order), native(&format!("{fit}{print}"), &history));
        if o.contains("residual") {
            // A residual is the value less the fitted one: compared at the scale of the values.
            for (i, v) in values.iter().enumerate() {
                got[i] += v;
                expected[i] += v;
            }
        }
        assert_close(&got, &expected, FITTED, o);
    }

    // SARIMAX with an exogenous feature, known for the months forecast too.
    let answer = call(&mut client, "Forecast_X", request(&chart("p=1, d=0, q=0", true))).await.expect("X");
    let got = in_date_order(&answer.numbers(), &order);
    let input: String =
        (0..n + ahead).map(|i| format!("{} {}\n", values.get(i).unwrap_or(&f64::NAN), promotion[i])).collect();
    let script = format!(
        "import sys, warnings, numpy\nwarnings.simplefilter('ignore')\n\
         from statsmodels.tsa.statespace.sarimax import SARIMAX\n\
         d = numpy.loadtxt(sys.stdin); y, x = d[:{n}, 0], d[:, 1:]\n\
         r = SARIMAX(y, exog=x[:{n}], order=(1, 0, 0)).fit(disp=False)\n\
         p = r.get_prediction(start=0, end={n} - 1).summary_frame()\n\
         f = r.get_forecast(6, exog=x[{n}:]).summary_frame()\n\
         for v in list(p['mean']) + list(f['mean']): print(v)"
    );
    assert_close(&got, &native(&script, &input), FITTED, "Forecast_X");

    // In a load script the function appends the periods asked for, dated by month.
    let rows: Vec<Vec<Cell>> =
        (0..n).map(|i| vec![Cell::N(dates[i]), Cell::N(values[i]), Cell::S("periods=6, method=ets".into())]).collect();
    let answer = call(&mut client, "Forecast_Table", request(&rows)).await.expect("table");
    assert_eq!(answer.table_fields(), ["Date", "Value", "Forecast", "Lower", "Upper", "Residual"]);
    let column = |c: usize| -> Vec<f64> { answer.rows().iter().map(|r| r.duals[c].num_data).collect() };
    assert_eq!(column(0), dates, "the history's dates, then the next six month starts");
    assert_close(&column(1)[..n], &values, 0.0, "the values");
    assert!(column(1)[n..].iter().all(|v| v.is_nan()), "no value for the months forecast");
    let script = format!("{}for v in list(p['mean']) + list(f['mean']): print(v)", cases[0].1);
    assert_close(&column(2), &native(&script, &history), FITTED, "Forecast_Table");

    let result = call(
        &mut client,
        "Forecast_Table",
        request(
            &rows[..10]
                .iter()
                .map(|r| vec![clone(&r[0]), clone(&r[1]), Cell::S("method=ets".into())])
                .collect::<Vec<_>>(),
        ),
    )
    .await;
    assert_status(result, tonic::Code::InvalidArgument, &["Forecast_Table", "option periods is required"]);
    let twice: Vec<Vec<Cell>> =
        [1.0, 1.0, 2.0, 3.0].iter().map(|&d| vec![Cell::N(43_466.0 + d), Cell::N(d), Cell::S(String::new())]).collect();
    let result = call(&mut client, "Forecast", request(&twice)).await;
    assert_status(result, tonic::Code::InvalidArgument, &["date 43467 is given twice"]);
}

fn clone(value: &Cell) -> Cell {
    match value {
        Cell::N(n) => Cell::N(*n),
        Cell::S(s) => Cell::S(s.clone()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_in_one_call_match_scikit_learn() {
    let server = server().await;
    let mut client = server.client().await;
    let mut rng = StdRng::seed_from_u64(13);
    let (n, trained) = (300, 240);
    let x: Vec<[f64; 3]> = (0..n).map(|_| [rng.r#gen::<f64>() * 10.0, rng.r#gen(), rng.r#gen::<f64>() * 3.0]).collect();
    let y: Vec<f64> = x.iter().map(|r| 2.0 * r[0] - 3.0 * r[1] + 0.5 * r[2] + rng.r#gen::<f64>()).collect();
    let median = {
        let mut s = y.clone();
        s.sort_by(f64::total_cmp);
        s[n / 2]
    };
    let class: Vec<&str> = y.iter().map(|&v| if v > median { "high" } else { "low" }).collect();
    let features: Vec<String> = x.iter().map(|r| format!("{};{};{}", r[0], r[1], r[2])).collect();
    // Train on the first rows; the last have no target: those are the rows to predict.
    let input: String = x.iter().zip(&y).map(|(r, v)| format!("{} {} {} {v}\n", r[0], r[1], r[2])).collect();
    let prelude = format!(
        "import sys, numpy, sklearn.ensemble, sklearn.linear_model, sklearn.pipeline, sklearn.preprocessing\n\
         d = numpy.loadtxt(sys.stdin); x, y = d[:, :3], d[:, 3]; t = slice(0, {trained})\n\
         c = numpy.where(y > numpy.sort(y)[{}], 'high', 'low')\n",
        n / 2
    );
    let regression = |o: &str| -> Vec<Vec<Cell>> {
        (0..n)
            .map(|i| {
                let target = if i < trained { y[i] } else { f64::NAN };
                vec![Cell::N(target), Cell::S(features[i].clone()), Cell::S(o.to_owned())]
            })
            .collect()
    };
    let cases = [
        ("method=linear", "sklearn.linear_model.LinearRegression()"),
        ("method=forest, trees=40, seed=1", "sklearn.ensemble.RandomForestRegressor(n_estimators=40, random_state=1)"),
        ("method=boosting, depth=2", "sklearn.ensemble.GradientBoostingRegressor(max_depth=2, random_state=0)"),
    ];
    for (o, model) in cases {
        let answer = call(&mut client, "Predict", request(&regression(o))).await.expect(o);
        let script = format!("{prelude}for v in {model}.fit(x[t], y[t]).predict(x): print(v)");
        assert_close(&answer.numbers(), &native(&script, &input), 1e-9, o);
    }

    let classes = |o: &str, known: usize| -> Vec<Vec<Cell>> {
        (0..n)
            .map(|i| {
                let target = if i < known { class[i] } else { "" };
                vec![Cell::S(target.into()), Cell::S(features[i].clone()), Cell::S(o.to_owned())]
            })
            .collect()
    };
    let logistic = "sklearn.pipeline.make_pipeline(sklearn.preprocessing.StandardScaler(), \
        sklearn.linear_model.LogisticRegression(max_iter=1000)).fit(x[t], c[t])";
    let answer = call(&mut client, "Classify", request(&classes("", trained))).await.expect("classify");
    let expected = native_lines(&format!("{prelude}for v in {logistic}.predict(x): print(v)"), &input);
    assert_eq!(answer.strings(), expected, "Classify");
    let answer =
        call(&mut client, "Classify_Probability", request(&classes("class=high", trained))).await.expect("probability");
    let script =
        format!("{prelude}m = {logistic}\nfor v in m.predict_proba(x)[:, list(m.classes_).index('high')]: print(v)");
    assert_close(&answer.numbers(), &native(&script, &input), 1e-9, "Classify_Probability");
    let result = call(&mut client, "Classify_Probability", request(&classes("class=medium", trained))).await;
    assert_status(result, tonic::Code::InvalidArgument, &["class='medium'", "the classes are high, low"]);

    // Metrics, confusion matrix and importances, for LOAD ... EXTENSION, on held-out rows.
    let split = "import sklearn.model_selection, sklearn.metrics, sklearn.inspection\n\
        a, b, ya, yb = sklearn.model_selection.train_test_split(x, TARGET, test_size=0.25, random_state=0)\n";
    let numbers_as_text: Vec<Vec<Cell>> =
        (0..n).map(|i| vec![Cell::S(y[i].to_string()), Cell::S(features[i].clone()), Cell::S(String::new())]).collect();
    let answer = call(&mut client, "Prediction_Metrics", request(&numbers_as_text)).await.expect("metrics");
    assert_eq!(answer.strings(), ["R2", "MAE", "RMSE", "Training rows", "Test rows"]);
    let got: Vec<f64> = answer.rows().iter().map(|r| r.duals[1].num_data).collect();
    let script = format!(
        "{prelude}{}p = sklearn.linear_model.LinearRegression().fit(a, ya).predict(b)\n\
         for v in [sklearn.metrics.r2_score(yb, p), sklearn.metrics.mean_absolute_error(yb, p), \
         sklearn.metrics.mean_squared_error(yb, p) ** 0.5, len(a), len(b)]: print(v)",
        split.replace("TARGET", "y")
    );
    assert_close(&got, &native(&script, &input), 1e-9, "Prediction_Metrics");

    let answer = call(&mut client, "Confusion_Matrix", request(&classes("method=forest", n))).await.expect("confusion");
    let got: Vec<String> = answer
        .rows()
        .iter()
        .map(|r| format!("{} {} {}", r.duals[0].str_data, r.duals[1].str_data, r.duals[2].num_data))
        .collect();
    let script = format!(
        "{prelude}{}m = sklearn.ensemble.RandomForestClassifier(random_state=0).fit(a, ya)\n\
         k = sklearn.metrics.confusion_matrix(yb, m.predict(b), labels=['high', 'low'])\n\
         for i, p in enumerate(['high', 'low']):\n\
         \x20   for j, q in enumerate(['high', 'low']): print(p, q, k[i, j])",
        split.replace("TARGET", "c")
    );
    assert_eq!(got, native_lines(&script, &input), "Confusion_Matrix");

    let answer = call(&mut client, "Importances", request(&classes("method=forest, names=a;b;c", n)))
        .await
        .expect("importances");
    assert_eq!(answer.strings(), ["a", "b", "c"]);
    let got: Vec<f64> = answer.rows().iter().flat_map(|r| [r.duals[1].num_data, r.duals[2].num_data]).collect();
    let script = format!(
        "{prelude}{}m = sklearn.ensemble.RandomForestClassifier(random_state=0).fit(a, ya)\n\
         r = sklearn.inspection.permutation_importance(m, b, yb, n_repeats=5, random_state=0)\n\
         for i in range(3): print(r.importances_mean[i]); print(r.importances_std[i])",
        split.replace("TARGET", "c")
    );
    assert_close(&got, &native(&script, &input), 1e-9, "Importances");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn association_rules_match_mlxtend() {
    let server = server().await;
    let mut client = server.client().await;
    let mut rng = StdRng::seed_from_u64(17);
    let products = ["bread", "butter", "jam", "milk", "cereal", "coffee", "tea", "sugar"];
    let mut rows = Vec::new();
    let mut text = String::new();
    for basket in 0..400 {
        let mut items: Vec<&str> = products.iter().copied().filter(|_| rng.r#gen::<f64>() < 0.2).collect();
        if rng.r#gen::<f64>() < 0.3 {
            items.extend(["bread", "butter"]); // together often, and a repeat now and then
        }
        if items.contains(&"cereal") && rng.r#gen::<f64>() < 0.7 {
            items.push("milk");
        }
        for item in items {
            rows.push(vec![
                Cell::S(format!("order {basket}")),
                Cell::S(item.into()),
                Cell::S("min_support=0.04, min_confidence=0.3".into()),
            ]);
            text.push_str(&format!("order{basket} {item}\n"));
        }
        if basket % 50 == 0 {
            // Rows with an empty item or transaction are left out, and a transaction with no
            // other row is no basket: none of these changes a support.
            for (transaction, item) in
                [(format!("order {basket}"), ""), (String::new(), "bread"), (format!("empty {basket}"), "")]
            {
                rows.push(vec![
                    Cell::S(transaction),
                    Cell::S(item.into()),
                    Cell::S("min_support=0.04, min_confidence=0.3".into()),
                ]);
            }
        }
    }
    let answer = call(&mut client, "Association_Rules", request(&rows)).await.expect("rules");
    assert_eq!(answer.table_fields(), ["Antecedent", "Consequent", "Support", "Confidence", "Lift"]);
    let lifts: Vec<f64> = answer.rows().iter().map(|r| r.duals[4].num_data).collect();
    assert!(lifts.windows(2).all(|w| w[0] >= w[1]), "by lift: {lifts:?}");
    let mut got: Vec<String> = answer
        .rows()
        .iter()
        .map(|r| {
            let d = &r.duals;
            format!(
                "{}|{}|{:.12}|{:.12}|{:.12}",
                d[0].str_data, d[1].str_data, d[2].num_data, d[3].num_data, d[4].num_data
            )
        })
        .collect();
    got.sort();
    let script = "import sys, pandas\n\
        from mlxtend.frequent_patterns import apriori, association_rules\n\
        p = pandas.read_csv(sys.stdin, sep=' ', names=['t', 'i']).drop_duplicates()\n\
        b = pandas.crosstab(p['t'], p['i']) > 0\n\
        f = apriori(b, min_support=0.04, use_colnames=True, max_len=3)\n\
        r = association_rules(f, metric='confidence', min_threshold=0.3)\n\
        n = lambda s: ', '.join(sorted(s))\n\
        for _, x in r.iterrows():\n\
        \x20   print(f\"{n(x.antecedents)}|{n(x.consequents)}|{x.support:.12f}|{x.confidence:.12f}|{x.lift:.12f}\")";
    let mut expected = native_lines(script, &text);
    expected.sort();
    assert!(expected.len() > 5, "the data has rules: {expected:?}");
    assert_eq!(got, expected, "Association_Rules");
}

/// What `make run` serves holds no name twice: every function of the example components (the
/// Makefile's EXAMPLES) and of the analytics library is served under its own name, so a first
/// run logs no clash (one file's function refused for another's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_runs_examples_and_library_declare_no_name_twice() {
    let server = server().await;
    let library = function_names(&server).await;
    let makefile = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Makefile"))
        .expect("the Makefile");
    let examples = makefile
        .lines()
        .find_map(|l| l.strip_prefix("EXAMPLES"))
        .and_then(|l| l.split_once(":="))
        .map(|(_, names)| names.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .expect("EXAMPLES in the Makefile");
    let examples: Vec<String> = examples.into_iter().filter(|e| !e.ends_with("_scripts")).collect();
    let names = tokio::task::spawn_blocking(move || {
        let runtime = sse_wasm::Runtime::new(Limits::default()).expect("runtime");
        let cache = sse_wasm::wasm::CompileCache::new(&shared_cache_dir(), test_cache_key()).expect("cache");
        examples
            .iter()
            .map(|example| {
                let (guest, _) = sse_wasm::wasm::Guest::load(&runtime, Some(&cache), &guest_wasm(example))
                    .unwrap_or_else(|e| panic!("{example}: {e}"));
                (example.clone(), guest.functions.iter().map(|f| f.name.clone()).collect::<Vec<_>>())
            })
            .collect::<Vec<_>>()
    })
    .await
    .expect("loads");
    let mut seen: std::collections::BTreeMap<String, String> =
        library.iter().map(|n| (n.clone(), "the analytics library".to_owned())).collect();
    for (example, functions) in names {
        for name in functions {
            if let Some(other) = seen.insert(name.clone(), example.clone()) {
                panic!("{name} is declared by both {other} and {example}: make run would refuse one");
            }
        }
    }
}

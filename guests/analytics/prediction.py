"""Prediction in one call, ready-made: linear and logistic regression, random forests and gradient
boosting from scikit-learn, fitted and applied within one request. Served by the data-science engine.

Chart:        Wasm.Predict(Sum(Sales), Sum(Visits) & ';' & Avg(Price), 'method=forest')
              Wasm.Classify(Only(Churned), Sum(Calls) & ';' & Only(Tenure), 'method=boosting')
              Wasm.Classify_Probability(Only(Churned), Sum(Calls) & ';' & Only(Tenure), 'class=yes')
Load script:  LOAD * EXTENSION Wasm.Prediction_Metrics(Customers{Churned, Features, 'names=Calls;Tenure'});
              LOAD * EXTENSION Wasm.Confusion_Matrix(Customers{Churned, Features, 'method=forest'});
              LOAD * EXTENSION Wasm.Importances(Customers{Churned, Features, 'names=Calls;Tenure'});

Trained once, used in every chart (the model store: `make run` keeps it in `models/`):
Load script:  LOAD * EXTENSION Wasm.Train(Customers{Churned, Features, 'name=churn, method=forest'});
Chart:        Wasm.Model_Predict(Sum(Calls) & ';' & Only(Tenure), 'name=churn')
              Wasm.Model_Probability(Sum(Calls) & ';' & Only(Tenure), 'name=churn, class=yes')
Load script:  Filter: LOAD '' AS Prefix AUTOGENERATE 1;  LOAD * EXTENSION Wasm.Models(Filter{Prefix});

The rows with a target train the model; every row with all its features gets a prediction (the
training rows too), so the rows to predict are those whose target is null. Features are one text
per row, `A & ';' & B`: any number of them. A row missing a feature answers null.
"""

import math

import numpy
import sklearn.ensemble
import sklearn.inspection
import sklearn.linear_model
import sklearn.metrics
import sklearn.model_selection
import sklearn.pipeline
import sklearn.preprocessing
import sse_guest
from sse_guest import NAN, REQUIRED, Dual, Range, table, tensor

MODEL = {
    "trees": (Range(int, 1), 100),
    "depth": (Range(int, 1), None),
    "seed": (Range(int, 0, 2**32 - 1), 0),
    "separator": (str, ";"),
}
REGRESSION = {**MODEL, "method": (("linear", "forest", "boosting"), "linear")}
CLASSIFICATION = {**MODEL, "method": (("logistic", "forest", "boosting"), "logistic")}
PROBABILITY = {**CLASSIFICATION, "class": (str, None)}
EVALUATION = {
    **MODEL,
    "method": (("linear", "logistic", "forest", "boosting"), None),
    "task": (("auto", "regression", "classification"), "auto"),
    # 0: the metrics of the training rows themselves.
    "test_size": (Range(float, 0, 1, below=True), 0.25),
    "names": (str, None),
    "repeats": (Range(int, 1), 5),
}
NULL_TEXTS = ("", "-")


def model(task, o):
    """The scikit-learn estimator for `task` and the options' method."""
    method = o["method"] or ("linear" if task == "regression" else "logistic")
    if (task, method) in (("regression", "logistic"), ("classification", "linear")):
        raise ValueError(f"option method={method} does not fit a {task}: use {'linear' if method == 'logistic' else 'logistic'}")
    trees = {"n_estimators": o["trees"], "random_state": o["seed"]}
    if method == "linear":
        return sklearn.linear_model.LinearRegression()
    if method == "logistic":
        return sklearn.pipeline.make_pipeline(
            sklearn.preprocessing.StandardScaler(), sklearn.linear_model.LogisticRegression(max_iter=1000)
        )
    if method == "forest":
        forest = sklearn.ensemble.RandomForestRegressor if task == "regression" else sklearn.ensemble.RandomForestClassifier
        return forest(max_depth=o["depth"], **trees)
    boosting = (
        sklearn.ensemble.GradientBoostingRegressor if task == "regression" else sklearn.ensemble.GradientBoostingClassifier
    )
    return boosting(max_depth=o["depth"] or 3, **trees)


def _numbers(target):
    """A target column as floats: NaN for null; a text that is not a number raises."""
    values = numpy.full(len(target), numpy.nan)
    for i, t in enumerate(target):
        if isinstance(t, str):
            t = t.strip()
            if t in NULL_TEXTS:
                continue
            try:
                values[i] = float(t)
            except ValueError:
                raise ValueError(f"row {i + 1}: target {t!r} is not a number (task=regression)") from None
        else:
            values[i] = t
    return values


def _labels(target):
    """A target column as texts, and which rows have one."""
    labels = numpy.array([str(t).strip() for t in target], dtype=object)
    return labels, numpy.array([t not in NULL_TEXTS for t in labels], dtype=bool)


def _training(matrix, known):
    complete = ~numpy.isnan(matrix).any(axis=1)
    train = complete & known
    if train.sum() < 2:
        count = int(train.sum())
        have = "1 row has" if count == 1 else f"{count} rows have"
        raise ValueError(f"{have} a target and every feature: a model needs at least 2")
    return complete, train


@tensor(per_call=True)
def Predict(target: list[float], features: list[str], options: list[str]) -> list[float]:
    """A regression fitted on the rows with a target, predicting every row: method=linear
    (default), forest or boosting (trees=100, depth, seed=0)."""
    o = sse_guest.options(options, REGRESSION)
    matrix = sse_guest.feature_matrix(features, o["separator"])
    y = sse_guest.finite(target, "target")
    complete, train = _training(matrix, ~numpy.isnan(y))
    fitted = model("regression", o).fit(matrix[train], y[train])
    answer = numpy.full(len(y), numpy.nan)
    answer[complete] = fitted.predict(matrix[complete])
    return answer


def _classifier(target, features, o):
    matrix = sse_guest.feature_matrix(features, o["separator"])
    labels, known = _labels(target)
    complete, train = _training(matrix, known)
    if len(set(labels[train])) < 2:
        raise ValueError("the rows with a target have one class: a classifier needs at least 2")
    return model("classification", o).fit(matrix[train], labels[train].astype(str)), matrix, complete


@tensor(per_call=True)
def Classify(target: list[str], features: list[str], options: list[str]) -> list[str]:
    """A classifier fitted on the rows with a class (null: empty or `-`), predicting every row's
    class: method=logistic (default), forest or boosting."""
    o = sse_guest.options(options, CLASSIFICATION)
    fitted, matrix, complete = _classifier(target, features, o)
    answer = numpy.full(len(matrix), "", dtype=object)
    answer[complete] = fitted.predict(matrix[complete])
    return [str(a) for a in answer]


@tensor(per_call=True)
def Classify_Probability(target: list[str], features: list[str], options: list[str]) -> list[float]:
    """The probability of class=NAME for every row, or of the class predicted when none is
    given; the options of Classify."""
    o = sse_guest.options(options, PROBABILITY)
    fitted, matrix, complete = _classifier(target, features, {k: v for k, v in o.items() if k != "class"})
    classes = [str(c) for c in fitted.classes_]
    answer = numpy.full(len(matrix), numpy.nan)
    probabilities = fitted.predict_proba(matrix[complete])
    if o["class"] is None:
        answer[complete] = probabilities.max(axis=1)
    elif o["class"] in classes:
        answer[complete] = probabilities[:, classes.index(o["class"])]
    else:
        raise ValueError(f"option class={o['class']!r}: the classes are {', '.join(classes)}")
    return answer


def _evaluation(target, features, options, spec=EVALUATION):
    """The options, the task, and the fitted model with its held-out rows (`test_size` of the
    rows with a target, drawn with `seed`; with test_size=0 the training rows themselves)."""
    o = sse_guest.options(options, spec)
    matrix = sse_guest.feature_matrix(features, o["separator"])
    labels, known = _labels(target)
    task = o["task"]
    if task == "auto":
        if o["method"] in ("linear", "logistic"):
            task = "regression" if o["method"] == "linear" else "classification"
        else:
            try:
                _numbers(labels[known])
                task = "regression"
            except ValueError:
                task = "classification"
    # Finite once the task is known: an infinite target does not make the targets classes.
    y = sse_guest.finite(_numbers(labels), "target") if task == "regression" else labels
    complete, train = _training(matrix, known)
    x, y = matrix[train], y[train] if task == "regression" else y[train].astype(str)
    if o["test_size"] > 0:
        # scikit-learn holds out ceil(test_size × rows).
        if math.ceil(o["test_size"] * len(x)) >= len(x):
            raise ValueError(
                f"option test_size={o['test_size']:g} holds out every one of the {len(x)} rows with a target"
                " and every feature: give a smaller test_size"
            )
        x_train, x_test, y_train, y_test = sklearn.model_selection.train_test_split(
            x, y, test_size=o["test_size"], random_state=o["seed"]
        )
    else:
        x_train, x_test, y_train, y_test = x, x, y, y
    if task == "classification" and len(set(y_train)) < 2:
        raise ValueError("the training rows have one class: a classifier needs at least 2")
    fitted = model(task, o).fit(x_train, y_train)
    return o, task, fitted, x_train, x_test, y_test, x, y


def _metrics(task, y_test, predicted):
    m = sklearn.metrics
    if task == "regression":
        return [
            ("R2", m.r2_score(y_test, predicted)),
            ("MAE", m.mean_absolute_error(y_test, predicted)),
            ("RMSE", float(numpy.sqrt(m.mean_squared_error(y_test, predicted)))),
        ]
    return [
        ("Accuracy", m.accuracy_score(y_test, predicted)),
        ("Precision", m.precision_score(y_test, predicted, average="macro", zero_division=0)),
        ("Recall", m.recall_score(y_test, predicted, average="macro", zero_division=0)),
        ("F1", m.f1_score(y_test, predicted, average="macro", zero_division=0)),
    ]


@table(fields={"Metric": str, "Value": float})
def Prediction_Metrics(target: list[str], features: list[str], options: list[str]):
    """How well the model predicts rows it did not see (test_size=0.25): R², MAE and RMSE for a
    regression, accuracy and macro precision, recall and F1 for a classification (task=auto:
    a regression when every target is a number); and the rows trained and tested on."""
    o, task, fitted, x_train, x_test, y_test, _, _ = _evaluation(target, features, options)
    rows = _metrics(task, y_test, fitted.predict(x_test))
    rows += [("Training rows", len(x_train)), ("Test rows", len(x_test))]
    return [(name, float(value)) for name, value in rows]


@table(fields={"Actual": str, "Predicted": str, "Count": float})
def Confusion_Matrix(target: list[str], features: list[str], options: list[str]):
    """A classifier's confusion matrix over the held-out rows: a row per actual and predicted
    class, zero counts included; the options of Prediction_Metrics."""
    o, task, fitted, _, x_test, y_test, _, _ = _evaluation(target, features, options)
    if task != "classification":
        raise ValueError("a confusion matrix needs classes: the targets are numbers (give task=classification)")
    # A class only the held-out rows hold (few rows) is an actual class too, never predicted.
    classes = sorted({str(c) for c in fitted.classes_} | {str(c) for c in y_test})
    counts = sklearn.metrics.confusion_matrix(y_test, fitted.predict(x_test), labels=classes)
    return [(a, p, float(counts[i, j])) for i, a in enumerate(classes) for j, p in enumerate(classes)]


@table(fields={"Feature": str, "Importance": float, "Std": float})
def Importances(target: list[str], features: list[str], options: list[str]):
    """Permutation importances over the held-out rows (repeats=5): how much the score drops when
    a feature is shuffled, with its standard deviation; names=A;B;C names the features."""
    o, task, fitted, _, x_test, y_test, _, _ = _evaluation(target, features, options)
    names = o["names"].split(";") if o["names"] else [f"Feature {i + 1}" for i in range(x_test.shape[1])]
    if len(names) != x_test.shape[1]:
        raise ValueError(f"option names gives {len(names)} names for {x_test.shape[1]} features")
    result = sklearn.inspection.permutation_importance(
        fitted, x_test, y_test, n_repeats=o["repeats"], random_state=o["seed"]
    )
    return [(n.strip(), float(m), float(s)) for n, m, s in zip(names, result.importances_mean, result.importances_std)]


TRAINING = {**EVALUATION, "name": (str, REQUIRED)}
USE = {"name": (str, REQUIRED), "separator": (str, ";")}
PROBABILITY_OF = {**USE, "class": (str, None)}


@table(fields={"Model": str, "Metric": str, "Value": float}, cacheable=False)
def Train(target: list[str], features: list[str], options: list[str]):
    """Fits a model as Prediction_Metrics does (its options, and name=NAME), scores it on the
    held-out rows, then refits it on every row with a target and keeps it in the model store as
    NAME, for this app's charts and scripts (Model_Predict); answers its metrics."""
    o, task, fitted, x_train, x_test, y_test, x, y = _evaluation(target, features, options, TRAINING)
    rows = _metrics(task, y_test, fitted.predict(x_test))
    rows += [("Training rows", len(x_train)), ("Test rows", len(x_test)), ("Rows kept", len(x))]
    final = model(task, o).fit(x, y) if o["test_size"] > 0 else fitted
    sse_guest.save(
        o["name"],
        {"model": final, "task": task, "features": x.shape[1], "names": o["names"], "options": dict(o)},
    )
    return [(o["name"], name, float(value)) for name, value in rows]


def _kept(o, features):
    """The kept model named by the options (this app's, else the operator's shared one, which
    may be a bare scikit-learn estimator), its task, and the feature matrix checked against it."""
    kept = sse_guest.load(o["name"])
    if not isinstance(kept, dict):
        kept = {"model": kept, "task": "classification" if hasattr(kept, "classes_") else "regression"}
    fitted = kept["model"]
    matrix = sse_guest.feature_matrix(features, o["separator"])
    width = kept.get("features") or getattr(fitted, "n_features_in_", matrix.shape[1])
    if matrix.shape[1] != width:
        raise ValueError(f"model {o['name']} was trained on {width} features; the rows give {matrix.shape[1]}")
    return fitted, kept["task"], matrix, ~numpy.isnan(matrix).any(axis=1)


@tensor(per_call=True, cacheable=False)
def Model_Predict(features: list[str], options: list[str]) -> list[Dual]:
    """Every row's prediction by the kept model name=NAME: a number for a regression, the class
    (as text, and its position among the model's classes as number) for a classifier. A row
    missing a feature answers null."""
    o = sse_guest.options(options, USE)
    fitted, task, matrix, complete = _kept(o, features)
    answer = [Dual(NAN, "")] * len(matrix)
    if complete.any():
        predicted = fitted.predict(matrix[complete])
        classes = [str(c) for c in getattr(fitted, "classes_", [])]
        for i, p in zip(numpy.flatnonzero(complete), predicted):
            if task == "regression":
                answer[i] = Dual(float(p), repr(float(p)))
            else:
                answer[i] = Dual(float(classes.index(str(p))) if str(p) in classes else NAN, str(p))
    return answer


@tensor(per_call=True, cacheable=False)
def Model_Probability(features: list[str], options: list[str]) -> list[float]:
    """The kept classifier name=NAME's probability of class=NAME for every row, or of the class
    it predicts when none is given."""
    o = sse_guest.options(options, PROBABILITY_OF)
    fitted, task, matrix, complete = _kept(o, features)
    if task != "classification":
        raise ValueError(f"model {o['name']} is a regression: it has no class probabilities")
    classes = [str(c) for c in fitted.classes_]
    answer = numpy.full(len(matrix), numpy.nan)
    if o["class"] is not None and o["class"] not in classes:
        raise ValueError(f"option class={o['class']!r}: the classes are {', '.join(classes)}")
    if complete.any():
        probabilities = fitted.predict_proba(matrix[complete])
        column = probabilities.max(axis=1) if o["class"] is None else probabilities[:, classes.index(o["class"])]
        answer[complete] = column
    return answer


@table(fields={"Model": str, "Bytes": float, "Shared": str, "Saved": float}, cacheable=False)
def Models(prefix: list[str]):
    """The models this app kept, then the operator's shared ones, whose names start with the
    prefix (empty: all): name, size, yes for shared, and when saved (a Qlik timestamp, UTC)."""
    prefixes = {str(p) for p in prefix} or {""}
    return [
        (m["name"], float(m["bytes"]), "yes" if m["shared"] else "no", m["modified"] / 86400 + 25569)
        for m in sse_guest.models()
        if any(m["name"].startswith(p) for p in prefixes)
    ]

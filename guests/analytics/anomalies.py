"""Anomalies, ready-made: outliers by z-score, robust z-score or IQR fences, XmR control limits,
and isolation forests over several features. Served by the data-science engine.

Chart:        Wasm.Outliers(Sum(Sales), 'method=robust, return=flag')
              Wasm.Control_Limits(Sum(Defects), 'return=ucl')
              Wasm.Isolation_Forest(Sum(Sales) & ';' & Sum(Margin), 'return=flag')
Load script:  LOAD * EXTENSION Wasm.Outliers(Data{Value, Options});

Each answers one value per input row, in the order Qlik sends them (a chart's sort order:
Control_Limits reads them as a sequence). Nulls answer null and are left out of the statistics;
an infinite value is refused, naming its row.
"""

import numpy
import sklearn.ensemble
import sse_guest
from sse_guest import Range, tensor

OUTLIERS = {
    "method": (("zscore", "robust", "iqr"), "robust"),
    "threshold": (Range(float, 0, above=True), None),
    "return": (("flag", "score"), "flag"),
}
THRESHOLDS = {"zscore": 3.0, "robust": 3.5, "iqr": 1.5}


@tensor(per_call=True)
def Outliers(value: list[float], options: list[str]) -> list[float]:
    """1 for an outlier, else 0 (return=flag), or its score (return=score): method=robust (median
    and MAD, threshold 3.5), zscore (mean and standard deviation, 3) or iqr (quartile fences, 1.5)."""
    o = sse_guest.options(options, OUTLIERS)
    x = sse_guest.finite(value)
    known = x[~numpy.isnan(x)]
    if not len(known):
        return numpy.full(len(x), numpy.nan)
    threshold = THRESHOLDS[o["method"]] if o["threshold"] is None else o["threshold"]
    with numpy.errstate(divide="ignore", invalid="ignore"):
        if o["method"] == "zscore":
            # On values over their largest magnitude (the same scores): squares of numbers beyond
            # 1e154 would overflow the standard deviation and flag nothing.
            largest = numpy.abs(known).max() or 1.0
            scaled = known / largest
            score = (x / largest - scaled.mean()) / scaled.std(ddof=1)
        elif o["method"] == "robust":
            median = numpy.median(known)
            score = 0.6745 * (x - median) / numpy.median(numpy.abs(known - median))
        else:
            q1, q3 = numpy.percentile(known, [25, 75])
            iqr = q3 - q1
            score = numpy.where(x < q1, (x - q1) / iqr, numpy.where(x > q3, (x - q3) / iqr, 0.0))
            score[numpy.isnan(x)] = numpy.nan
    if o["return"] == "score":
        return score
    flag = (numpy.abs(score) > threshold).astype(float)
    flag[numpy.isnan(x)] = numpy.nan
    return flag


LIMITS = {"return": (("center", "ucl", "lcl", "flag"), "flag")}


@tensor(per_call=True)
def Control_Limits(value: list[float], options: list[str]) -> list[float]:
    """An XmR (individuals) chart: the center line, the upper or lower natural process limit
    (mean ± 2.66 × mean moving range), or 1 for a point outside them (return=flag)."""
    o = sse_guest.options(options, LIMITS)
    x = sse_guest.finite(value)
    known = x[~numpy.isnan(x)]
    center = known.mean()
    spread = 2.66 * numpy.abs(numpy.diff(known)).mean()
    line = {"center": center, "ucl": center + spread, "lcl": center - spread}
    if o["return"] in line:
        return numpy.full(len(x), line[o["return"]])
    flag = ((x > line["ucl"]) | (x < line["lcl"])).astype(float)
    flag[numpy.isnan(x)] = numpy.nan
    return flag


FOREST = {
    "trees": (Range(int, 1), 100),
    "contamination": (Range(float, 0, 0.5, above=True), None),
    "seed": (Range(int, 0, 2**32 - 1), 0),
    "separator": (str, ";"),
    "return": (("flag", "score"), "flag"),
}


@tensor(per_call=True)
def Isolation_Forest(features: list[str], options: list[str]) -> list[float]:
    """Isolation forest over the features of each row (`A & ';' & B`): 1 for an anomaly (return=flag)
    or scikit-learn's score_samples (return=score, lower is more anomalous); contamination (0-0.5)
    sets the share flagged, else scikit-learn's automatic threshold."""
    o = sse_guest.options(options, FOREST)
    matrix = sse_guest.feature_matrix(features, o["separator"])
    complete = ~numpy.isnan(matrix).any(axis=1)
    answer = numpy.full(len(matrix), numpy.nan)
    if not complete.any():
        return answer
    contamination = "auto" if o["contamination"] is None else o["contamination"]
    x = matrix[complete]
    forest = sklearn.ensemble.IsolationForest(
        n_estimators=o["trees"], contamination=contamination, random_state=o["seed"]
    ).fit(x)
    if o["return"] == "score":
        answer[complete] = forest.score_samples(x)
    elif (x == x[0]).all():
        # Rows all at one point are equally normal. scikit-learn's automatic threshold equals
        # their score but for rounding, which flags every one of 50 or more such rows.
        answer[complete] = 0.0
    else:
        answer[complete] = (forest.predict(x) == -1).astype(float)
    return answer

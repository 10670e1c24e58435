"""Correlation and descriptive statistics, ready-made: served by the data-science engine.

Chart:        Wasm.Correlation(Sales, Margin, 'method=spearman')
Load script:  LOAD * EXTENSION Wasm.Correlation_Matrix(Long{Key, Variable, Value, Options});
              LOAD * EXTENSION Wasm.Describe(Long{Variable, Value});

Nulls (NaN) are left out pairwise. Options follow the library's convention: `key=value` pairs
separated by commas, checked strictly.
"""

import numpy
import pandas
import scipy.stats
import sse_guest
from sse_guest import Numbers, Texts, aggregation, table

METHODS = ("pearson", "spearman", "kendall")
SPEC = {"method": (METHODS, "pearson")}


def _spearman(x, y):
    """Spearman's rho: Pearson's coefficient of the two columns' average ranks (ranked by the
    host, natively)."""
    rx, ry = sse_guest.ranks(x), sse_guest.ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    rho = numpy.dot(rx, ry) / numpy.sqrt(numpy.dot(rx, rx) * numpy.dot(ry, ry))
    return float(min(1.0, max(-1.0, rho)))


def _coefficient(x, y, method):
    if len(x) < 3 or numpy.all(x == x[0]) or numpy.all(y == y[0]):
        return numpy.nan
    if method == "pearson":
        return float(scipy.stats.pearsonr(x, y).statistic)
    if method == "spearman":
        return _spearman(x, y)
    return float(scipy.stats.kendalltau(x, y).statistic)


@aggregation
def Correlation(x: Numbers, y: Numbers, options: Texts) -> float:
    """The correlation of two columns: method=pearson (default), spearman or kendall (tau-b)."""
    method = sse_guest.options(options, SPEC)["method"]
    x, y = numpy.asarray(x, dtype=float), numpy.asarray(y, dtype=float)
    keep = ~(numpy.isnan(x) | numpy.isnan(y))
    # Copied without the nulls only when there are some.
    if not keep.all():
        x, y = x[keep], y[keep]
    return _coefficient(x, y, method)


@table(fields={"Variable1": str, "Variable2": str, "Correlation": float, "Observations": float})
def Correlation_Matrix(key: Texts, variable: Texts, value: Numbers, options: Texts):
    """Every pair of variables' correlation, from long rows (observation key, variable, value)."""
    method = sse_guest.options(options, SPEC)["method"]
    frame = pandas.DataFrame({"key": key, "variable": variable, "value": numpy.asarray(value, dtype=float)})
    wide = frame.pivot_table(index="key", columns="variable", values="value", aggfunc="mean", sort=True)
    names = [str(name) for name in wide.columns]
    values = wide.to_numpy()
    # Each pair once: the coefficients are symmetric, so (b, a) repeats (a, b).
    pairs = {}
    for i in range(len(names)):
        for j in range(i, len(names)):
            pair = values[:, [i, j]]
            pair = pair[~numpy.isnan(pair).any(axis=1)]
            pairs[i, j] = pairs[j, i] = (_coefficient(pair[:, 0], pair[:, 1], method), float(len(pair)))
    return [(a, b, *pairs[i, j]) for i, a in enumerate(names) for j, b in enumerate(names)]


@table(
    fields={
        "Variable": str,
        "Count": float,
        "Mean": float,
        "Std": float,
        "Min": float,
        "P25": float,
        "Median": float,
        "P75": float,
        "Max": float,
    }
)
def Describe(variable: Texts, value: Numbers):
    """Count, mean, standard deviation (n-1), minimum, quartiles and maximum of each variable."""
    frame = pandas.DataFrame({"variable": variable, "value": numpy.asarray(value, dtype=float)})
    described = frame.groupby("variable", sort=True)["value"].describe()
    return [(str(name), *(float(v) for v in row)) for name, row in zip(described.index, described.to_numpy())]

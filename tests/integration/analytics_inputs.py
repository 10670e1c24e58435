"""Every function of the analytics library, run natively on small random inputs of the kinds a
client can send (no rows, one row, nulls, Qlik's `-`, zeros, -0, 1e300, the smallest subnormal,
ragged or empty features, repeated or irregular dates, one class, texts among numbers) with options
drawn from those each function takes. A call may answer or refuse, but a refusal must be the
library's own: a ValueError raised in the library's files (which names the row or option), never an
error raised inside numpy, pandas, scipy, scikit-learn or statsmodels in their words, and never
another exception type.

Usage: python analytics_inputs.py ROOT SEED CALLS [--cases]
Prints one line per kind of refusal that is not the library's own, with an input that caused it.
With --cases, prints instead every call of at least one row and what it answered natively, for
the gRPC test to send the same call to the engine:

    CASE <function>
    N <number>\t<number>...  or  S <text>\t<text>...   (a column each, in parameter order)
    ERROR <message>  or  ROW <N:number or S:text>\t...  (a line per answer row)
    END
"""

import glob
import math
import os
import random
import sys
import warnings

ROOT, SEED, CALLS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
CASES = "--cases" in sys.argv[4:]
sys.path.insert(0, os.path.join(ROOT, "tests/bench"))
from analytics_native import as_the_engine_hands, library  # noqa: E402

warnings.simplefilter("ignore")
LIBRARY = os.path.join(ROOT, "guests/analytics")
DRIVER = os.path.join(ROOT, "guests/python/datasci/driver.py")
FILES = sorted(glob.glob(f"{LIBRARY}/*.py"))
FUNCTIONS = library(DRIVER, FILES)
# Where the library's own refusals are raised: its files and the engine's sse_guest.
OURS = {os.path.abspath(f) for f in [DRIVER, *FILES]}
OPTIONS = {
    "Correlation": ["", "method=spearman", "method=kendall"],
    "Correlation_Matrix": ["", "method=spearman", "method=kendall"],
    "Describe": [],
    "Outliers": ["", "method=zscore", "method=iqr", "method=robust, return=score", "threshold=0.1"],
    "Control_Limits": ["", "return=ucl", "return=center"],
    "Isolation_Forest": ["", "contamination=0.5", "return=score", "trees=1"],
    "Cluster": [
        "", "k=1", "k=2", "k=3", "method=dbscan", "method=hdbscan, min_samples=1, min_cluster_size=2",
        "method=hdbscan, min_samples=2, return=probability", "scale=minmax", "scale=none, max_k=2",
    ],
    "Cluster_Geo": ["", "min_samples=1", "method=hdbscan, min_samples=1, min_cluster_size=2", "eps_km=1000"],
    "Forecast": [
        "", "method=arima", "method=arima, p=0, d=0, q=0", "trend=none, seasonal=none",
        "seasonal=add, seasonal_periods=2", "damped=true", "return=lower", "frequency=month", "frequency=year",
        "trend=mul",
    ],
    "Forecast_Table": ["periods=2", "periods=0, method=arima", "periods=3, frequency=week"],
    "Forecast_X": ["", "p=0, d=0, q=0"],
    "Predict": ["", "method=forest, trees=2", "method=boosting, trees=2", "method=linear"],
    "Classify": ["", "method=forest, trees=2", "method=boosting, trees=2"],
    "Classify_Probability": ["", "class=a", "method=forest, trees=2"],
    "Prediction_Metrics": ["", "task=classification", "task=regression", "test_size=0", "test_size=0.5"],
    "Confusion_Matrix": ["", "test_size=0", "task=classification, test_size=0.5"],
    "Importances": ["", "repeats=1", "test_size=0"],
    "Association_Rules": ["", "min_support=0.5", "max_length=2, min_confidence=0"],
}
# The model store's functions need the host's store: datasci_models.rs calls them through gRPC.
assert set(OPTIONS) <= set(FUNCTIONS), f"not in the library: {set(OPTIONS) - set(FUNCTIONS)}"
rng = random.Random(SEED)


# Whether this call's numbers may be huge (1e300): in a fifth of the calls, so that the others
# reach the models.
extreme = False


def number():
    r = rng.random()
    if r < 0.15:
        return math.nan
    if r < 0.2:
        return rng.choice([0.0, -0.0, 1e300, -1e300, 5e-324] if extreme else [0.0, -0.0, 5e-324])
    if r < 0.5:
        return float(rng.randint(-3, 3))
    return rng.uniform(-10, 10)


def features(width):
    values = []
    for _ in range(width):
        r = rng.random()
        values.append("" if r < 0.1 else "-" if r < 0.13 else repr(number()).replace("nan", ""))
    return ";".join(values)


def column(name, kind, rows, width, dates):
    if name == "date":
        return dates
    if name == "latitude":
        return [rng.choice([math.nan, rng.uniform(-90, 90)]) for _ in range(rows)]
    if name == "longitude":
        return [rng.choice([math.nan, rng.uniform(-180, 180)]) for _ in range(rows)]
    if kind == 1:
        return [number() for _ in range(rows)]
    if name == "features":
        return [features(width) for _ in range(rows)]
    if name == "target":
        return [rng.choice(["a", "b", "", "1", "2.5", "-"]) for _ in range(rows)]
    if name in ("transaction", "key"):
        return [rng.choice(["t1", "t2", "t3", ""]) for _ in range(rows)]
    return [rng.choice(["a", "b", "c", "", "-", "a b", "é"]) for _ in range(rows)]


def cell(value):
    if isinstance(value, str):
        assert "\t" not in value and "\n" not in value, value
        return f"S:{value}"
    return f"N:{float(value)!r}"


def case(name, declaration, columns, answer, error):
    """One call as --cases prints it."""
    print(f"CASE {name}")
    for (_, kind), values in zip(declaration[4], columns):
        print("N " + "\t".join(repr(float(v)) for v in values) if kind == 1 else "S " + "\t".join(values))
    if error is not None:
        print("ERROR " + error.replace("\n", " "))
    elif hasattr(answer, "itertuples"):
        for row in answer.itertuples(index=False):
            print("ROW " + "\t".join(cell(v) for v in row))
    elif isinstance(answer, (list, tuple)) or hasattr(answer, "__array__"):
        for row in answer:
            print("ROW " + "\t".join(cell(v) for v in (row if isinstance(row, tuple) else (row,))))
    else:
        print("ROW " + cell(answer))
    print("END")


found = {}
for _ in range(CALLS):
    name = rng.choice(sorted(OPTIONS))
    function, declaration = FUNCTIONS[name]
    rows = rng.choice([0, 1, 2, 3, 4, 6, 10, 25, 60, 150])
    extreme = rng.random() < 0.2
    width = rng.choice([1, 2, 3])
    if rng.random() < 0.9:
        dates = [float(d) for d in rng.sample(range(40000, 40400), rows)]
    else:
        dates = [40000.0 + 7 * i for i in range(rows)]
    options = rng.choice(OPTIONS[name] or [""])
    columns = []
    for parameter, kind in declaration[4]:
        if parameter == "options":
            columns.append([options] * rows)
        elif parameter == "prefix":
            columns.append([""] * rows)
        else:
            columns.append(column(parameter, kind, rows, width, dates))
    try:
        answer = function(*as_the_engine_hands(declaration, columns))
    except Exception as error:  # noqa: BLE001 - every exception is judged below
        frame = error.__traceback__
        while frame.tb_next:
            frame = frame.tb_next
        raised_in = frame.tb_frame.f_code.co_filename
        if isinstance(error, ValueError) and os.path.abspath(raised_in) in OURS:
            if CASES and rows:
                case(name, declaration, columns, None, str(error))
            continue
        kind = f"{name}: {type(error).__name__} in {os.path.basename(raised_in)}: {str(error)[:160]!r}"
        found.setdefault(kind, (options, [list(c)[:6] for c in columns]))
        continue
    if CASES and rows:
        case(name, declaration, columns, answer, None)
if not CASES:
    for kind, (options, columns) in sorted(found.items()):
        print(f"{kind} -- options {options!r}, first rows {columns}")

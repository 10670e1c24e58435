"""The data-science script engine's driver: runs once, inside the interpreter, while
`sse-wasm datasci-snapshot` pre-initializes it, and stays in the snapshot every evaluation
starts from.

It imports numpy and pandas (and warms up the parts of pandas that import lazily), moves the
standard library archive into memory so that later imports need no files, and defines
`_sse_evaluate`, which each evaluation calls in a fresh instance. The data crosses through the
interpreter's one host import (`_host.call`): the evaluation asks for its input frame, and answers
with a frame of columns, or with an error.

Scripts follow Qlik's two full-script-support examples, unchanged:

- an expression (fullscriptsupport): evaluated with the globals `args` (one list per parameter,
  a DUAL parameter as `[numbers, texts]`) and `numpy`; its value's elements are the rows;
- statements (fullscriptsupport_pandas): run with the globals `q` (a DataFrame, one column per
  parameter named as in the expression; a DUAL parameter adds `<name>_str` and `<name>_num`),
  `numpy`, `pandas` and `table` (a TableDescription); the answer is `qResult`, and
  `tableDescription = True` sends `table` to Qlik and types the answer's columns by its fields.
"""

import sys

# Imports before the snapshot, from the archive on the file system; afterwards, from memory.
_ARCHIVE_PATH = sys.path[0] if sys.path else "/usr/local/lib/python315.zip"


def _install_memory_importer():
    """Reads the standard library archive into memory and imports from it from now on, so an
    evaluation, which has no files at all, can still import any module of the archive."""
    import _frozen_importlib as bootstrap
    import io
    import marshal
    import zipfile

    with open(_ARCHIVE_PATH, "rb") as f:
        archive = f.read()
    zf = zipfile.ZipFile(io.BytesIO(archive))
    names = set(zf.namelist())
    # Folders without an __init__ are namespace packages.
    folders = {name.rsplit("/", 1)[0] for name in names if "/" in name}
    folders |= {f.rsplit("/", i)[0] for f in list(folders) for i in range(1, f.count("/") + 1)}
    prefix = _ARCHIVE_PATH + "/"

    class Loader:
        def __init__(self, entry, package):
            self.entry = entry
            self.package = package

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            data = zf.read(self.entry)
            if self.entry.endswith(".pyc"):
                code = marshal.loads(memoryview(data)[16:])
            else:
                code = compile(data, prefix + self.entry, "exec", dont_inherit=True)
            exec(code, module.__dict__)

        def is_package(self, fullname):
            return self.package

        def get_data(self, path):
            name = path[len(prefix):] if path.startswith(prefix) else path
            try:
                return zf.read(name)
            except KeyError:
                raise OSError(f"no such resource: {path}") from None

        def get_source(self, fullname):
            return None

        def get_resource_reader(self, fullname):
            # Package data (CSS, tables, fonts) read through importlib.resources, from memory.
            if not self.package:
                return None
            from importlib.resources.abc import TraversableResources

            folder = self.entry.rsplit("/", 1)[0] + "/"

            class Reader(TraversableResources):
                def files(self):
                    return zipfile.Path(zf, folder)

            return Reader()

    class MemoryFinder:
        @classmethod
        def find_spec(cls, fullname, path=None, target=None):
            base = fullname.replace(".", "/")
            for entry, package in (
                (base + "/__init__.pyc", True),
                (base + "/__init__.py", True),
                (base + ".pyc", False),
                (base + ".py", False),
            ):
                if entry in names:
                    spec = bootstrap.ModuleSpec(
                        fullname, Loader(entry, package), origin=prefix + entry, is_package=package
                    )
                    if package:
                        spec.submodule_search_locations = [prefix + base]
                    spec.has_location = True
                    return spec
            if base in folders:
                spec = bootstrap.ModuleSpec(fullname, None, is_package=True)
                spec.submodule_search_locations = [prefix + base]
                return spec
            return None

        @classmethod
        def invalidate_caches(cls):
            pass

    sys.meta_path.insert(0, MemoryFinder)


_install_memory_importer()

# What the snapshot holds ready. Anything else in the archive imports on first use.
import collections  # noqa: E402
import datetime  # noqa: E402
import functools  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402, F401
import linecache  # noqa: E402
import marshal  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import struct  # noqa: E402
import traceback  # noqa: E402

import _host  # noqa: E402
import numpy  # noqa: E402
import pandas  # noqa: E402
import scipy  # noqa: E402
import scipy.cluster.hierarchy  # noqa: E402
import scipy.fft  # noqa: E402
import scipy.integrate  # noqa: E402
import scipy.interpolate  # noqa: E402
import scipy.linalg  # noqa: E402
import scipy.optimize  # noqa: E402
import scipy.signal  # noqa: E402
import scipy.spatial  # noqa: E402
import scipy.special  # noqa: E402
import scipy.stats  # noqa: E402
import sklearn  # noqa: E402
import sklearn.cluster  # noqa: E402
import sklearn.decomposition  # noqa: E402
import sklearn.ensemble  # noqa: E402
import sklearn.linear_model  # noqa: E402
import sklearn.metrics  # noqa: E402
import sklearn.model_selection  # noqa: E402
import sklearn.neighbors  # noqa: E402
import sklearn.pipeline  # noqa: E402
import sklearn.preprocessing  # noqa: E402
import sklearn.tree  # noqa: E402
import statsmodels.api  # noqa: E402
import statsmodels.tsa.api  # noqa: E402


_HEAP_ROOM = 32 << 20


def _warm_up():
    """Runs what scripts commonly do, so the modules pandas and numpy import on first use are in
    the snapshot rather than imported by every evaluation."""
    frame = pandas.DataFrame(
        {"a": numpy.arange(8.0), "b": ["x", "y"] * 4, "c": [(1.0, "1")] * 8, "d": list("abcdefgh")}
    )
    frame.groupby("b")["a"].agg(["mean", "sum", "count", "min", "max", "std", "median"])
    frame.groupby("b").a.transform("mean")
    frame.describe()
    frame.sort_values("a").reset_index(drop=True)
    frame.pivot_table(index="b", values="a", aggfunc="sum")
    frame.merge(frame, on="b", how="left")
    frame["a"].rolling(3).mean()
    frame["a"].cumsum()
    frame["a"].rank()
    frame["a"].quantile([0.25, 0.75])
    frame["d"].str.upper()
    frame["b"].value_counts()
    frame.values
    frame.to_numpy()
    pandas.to_datetime(pandas.Series([45000.0]), unit="D", origin="1899-12-30")
    pandas.concat([frame, frame])
    repr(frame)
    values = numpy.linspace(0.0, 1.0, 50)
    numpy.percentile(values, [10, 50, 90])
    numpy.histogram(values, bins=5)
    numpy.corrcoef(values, values[::-1])
    numpy.polyfit(values, values * 2.0, 1)
    numpy.linalg.lstsq(numpy.vstack([values, numpy.ones(50)]).T, values, rcond=None)
    numpy.random.default_rng(1).normal(size=3)
    numpy.fft.rfft(values)
    points = numpy.column_stack([values, values[::-1]])
    scipy.stats.norm.cdf(values)
    scipy.stats.linregress(values, values * 3.0)
    scipy.stats.pearsonr(values, values[::-1])
    scipy.stats.ttest_ind(values, values * 2.0)
    scipy.optimize.minimize(lambda x: (x[0] - 1.0) ** 2, [0.0])
    scipy.optimize.curve_fit(lambda x, a, b: a * x + b, values, values * 2.0 + 1.0)
    scipy.interpolate.interp1d(values, values)(0.5)
    sklearn.linear_model.LinearRegression().fit(points, values).predict(points)
    sklearn.linear_model.LogisticRegression().fit(points, values > 0.5).predict(points)
    sklearn.cluster.KMeans(n_clusters=2, n_init=1, random_state=0).fit_predict(points)
    sklearn.preprocessing.StandardScaler().fit_transform(points)
    sklearn.decomposition.PCA(n_components=1).fit_transform(points)
    sklearn.ensemble.RandomForestRegressor(n_estimators=2, random_state=0).fit(points, values).predict(points)
    sklearn.metrics.mean_squared_error(values, values)
    statsmodels.api.OLS(values, statsmodels.api.add_constant(values[::-1])).fit().params


_warm_up()
del _warm_up

# Room for a call's arrays, grown once here so that the snapshot's memory holds it: a call that
# grows the memory changes its pages' protection (~0.3 ms at 100,000 rows, on the call's path), and
# its slot's reset changes it back. The freed block stays the allocator's (WebAssembly memory does
# not shrink), untouched: zero pages, not part of the image.
_ROOM = numpy.empty(_HEAP_ROOM, dtype=numpy.uint8)
del _ROOM

# Nothing reads the file system after the snapshot: every import comes from memory.
sys.path.clear()
sys.path_importer_cache.clear()
try:
    import zipimport

    zipimport._zip_directory_cache.clear()
except (ImportError, AttributeError):
    pass

_FILENAME = "<script>"
LANGUAGE = "pandas"  # what `#!` line chooses this engine
NUMERIC, TEXT, DUAL = 1, 0, 2  # Qlik's DataType numbers


class FieldDescription:
    """One field of a TableDescription, as Qlik's protobuf message has it."""

    __slots__ = ("name", "dataType", "featureType", "tags")

    def __init__(self, name="", dataType=0, featureType=0, tags=None):
        self.name = name
        self.dataType = dataType
        self.featureType = featureType
        self.tags = list(tags or [])

    def __repr__(self):
        return f"FieldDescription(name={self.name!r}, dataType={self.dataType!r})"


class _Fields(list):
    """The repeated `fields` of a TableDescription, with protobuf's `add`."""

    def add(self, **fields):
        field = FieldDescription(**fields)
        self.append(field)
        return field


class TableDescription:
    """Qlik's TableDescription message, as a script fills it (`table.name = ...`,
    `table.fields.add(name=..., dataType=...)`)."""

    def __init__(self):
        self.name = ""
        self.tags = []
        self.fields = _Fields()
        self.numberOfRows = 0

    def __repr__(self):
        return f"TableDescription(name={self.name!r}, fields={list(self.fields)!r})"


# The text columns of this instance's input that came as distinct values and codes: their
# distinct values and codes, by the column's id (the column itself kept with them, so the id stays
# its own).
_DISTINCT = {}
# A dictionary column's codes as the frame holds them (u32, little-endian), read as numpy's index
# type where that is 32 bits (WebAssembly), so indexing with them converts nothing.
_CODE = numpy.dtype(numpy.intp) if numpy.dtype(numpy.intp).itemsize == 4 else numpy.dtype("<u4")


def _input():
    """The host's input frame, which the host writes straight into a buffer of this instance's
    own: writable, so that the columns of numbers read from it are arrays of their own without
    a copy."""
    (size,) = struct.unpack("<I", _host.call(b"input-size"))
    frame = numpy.empty(size, dtype=numpy.uint8)
    _host.call(b"input-into" + struct.pack("<I", frame.__array_interface__["data"][0]))
    return frame


def _read_input(frame):
    """The script, its parameters and their columns from the host's input frame."""
    view = memoryview(frame)
    version, function_type, return_type, rows, count = struct.unpack_from("<5I", view, 0)
    at = 20
    params = []
    for _ in range(count):
        kind, length = struct.unpack_from("<2I", view, at)
        at += 8
        params.append((bytes(view[at : at + length]).decode(), kind))
        at += length
    (length,) = struct.unpack_from("<I", view, at)
    at += 4
    script = bytes(view[at : at + length]).decode()
    at += length
    columns = []

    def numbers():
        nonlocal at
        at = (at + 7) & ~7
        values = numpy.frombuffer(view, dtype="<f8", count=rows, offset=at)
        at += 8 * rows
        return values

    def texts():
        # Either the values joined by NUL (when none holds one), or offsets and bytes.
        nonlocal at
        at = (at + 3) & ~3
        (form,) = struct.unpack_from("<I", view, at)
        at += 4
        if form == 2:
            # A dimension: each distinct value once, then a code per row; one string object per
            # distinct value, shared by its rows.
            count, length = struct.unpack_from("<2I", view, at)
            at += 8
            distinct = numpy.fromiter(bytes(view[at : at + length]).decode().split("\0"), dtype=object, count=count)
            at = (at + length + 3) & ~3
            # Codes below 2**31 (the host's frame is under 2 GiB): read as the index type itself.
            codes = numpy.frombuffer(view, dtype=_CODE, count=rows, offset=at)
            at += 4 * rows
            # A constant (the options Qlik sends on every row) fills; `take` spares the index
            # conversion and checks of `distinct[codes]`.
            if count == 1:
                column = numpy.empty(rows, dtype=object)
                column.fill(distinct[0])
            else:
                column = distinct.take(codes)
            _DISTINCT[id(column)] = (column, distinct, codes)
            return column
        if form == 1:
            (length,) = struct.unpack_from("<I", view, at)
            at += 4
            data = bytes(view[at : at + length])
            at += length
            return data.decode().split("\0") if rows else []
        offsets = numpy.frombuffer(view, dtype="<u4", count=rows + 1, offset=at)
        at += 4 * (rows + 1)
        data = bytes(view[at : at + int(offsets[-1])])
        at += int(offsets[-1])
        bounds = offsets.tolist()
        return [data[a:b].decode() for a, b in zip(bounds, bounds[1:])]

    for _, kind in params:
        if kind == NUMERIC:
            columns.append(numbers())
        elif kind == TEXT:
            columns.append(texts())
        else:
            columns.append((numbers(), texts()))
    return script, params, return_type, rows, columns


def _number(value, where):
    if value is None:
        return math.nan
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{where} is the text {value!r} where a number is expected")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{where} is {type(value).__name__} {value!r}, not a number") from None


def _text(value, where):
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, (int, float, numpy.number, numpy.bool_)):
        return str(value)
    raise TypeError(f"{where} is {type(value).__name__} {value!r}, not a text")


def _is_scalar(value):
    return isinstance(value, (str, bytes)) or not hasattr(value, "__iter__")


def _encode_numbers(values, out):
    array = numpy.ascontiguousarray(values, dtype="<f8")
    out.append(b"\0" * (-sum(map(len, out)) % 8))
    out.append(array.tobytes())


def _encode_texts(values, out):
    out.append(b"\0" * (-sum(map(len, out)) % 4))
    joined = "\0".join(values)
    if values and joined.count("\0") == len(values) - 1:
        # No value holds a NUL: one join, which the host splits.
        data = joined.encode()
        out.append(struct.pack("<II", 1, len(data)))
        out.append(data)
        return
    encoded = [v.encode() for v in values]
    offsets = numpy.zeros(len(encoded) + 1, dtype="<u4")
    if encoded:
        lengths = numpy.fromiter(map(len, encoded), dtype=numpy.int64, count=len(encoded))
        total = numpy.cumsum(lengths)
        if total[-1] >= 1 << 32:
            raise ValueError("the answer's texts pass 4 GiB")
        offsets[1:] = total
    out.append(struct.pack("<I", 0))
    out.append(offsets.tobytes())
    out.append(b"".join(encoded))


def _column_values(rows, column, kind):
    """Column `column` of `rows` (lists), converted to `kind`."""
    if kind == NUMERIC:
        return [_number(row[column], f"row {i + 1}, column {column + 1}") for i, row in enumerate(rows)]
    if kind == TEXT:
        return [_text(row[column], f"row {i + 1}, column {column + 1}") for i, row in enumerate(rows)]
    values = []
    for i, row in enumerate(rows):
        value = row[column]
        where = f"row {i + 1}, column {column + 1}"
        if isinstance(value, (tuple, list)) and len(value) == 2:
            values.append((_number(value[0], where), _text(value[1], where)))
        else:
            values.append((_number(value, where), _text(value, where)))
    return values


def _rows(result, pairs):
    """The answer's rows, each a list of columns: a scalar is one row of one column; otherwise
    each element is a row, and an element that is itself iterable (not a text) is its columns."""
    if isinstance(result, pandas.DataFrame):
        return [list(row) for row in result.itertuples(index=False, name=None)]
    if _is_scalar(result):
        return [[result]]
    if isinstance(result, numpy.ndarray) and result.ndim == 2:
        return result.tolist()
    return [[row] if _is_scalar(row) or (pairs and _pair(row)) else list(row) for row in result]


def _pair(row):
    return isinstance(row, tuple) and len(row) == 2 and isinstance(row[1], str) and not isinstance(row[0], str)


def _fast_numeric(result, types):
    """The columns of a numeric array answer without a loop per value, or None."""
    if not all(kind == NUMERIC for kind in types):
        return None
    if isinstance(result, (pandas.Series, pandas.Index)):
        result = result.to_numpy()
    elif isinstance(result, pandas.DataFrame):
        if not all(pandas.api.types.is_numeric_dtype(t) for t in result.dtypes):
            return None
        result = result.to_numpy(dtype="f8")
    if not isinstance(result, numpy.ndarray) or result.dtype.kind not in "fiub":
        return None
    if result.ndim == 1:
        columns = [result]
    elif result.ndim == 2:
        columns = [result[:, j] for j in range(result.shape[1])]
    else:
        return None
    if len(columns) != len(types):
        return None
    return len(result), columns


def _answer(result, types):
    """The answer frame: row count, then each column as the host reads it."""
    fast = _fast_numeric(result, types)
    if fast is not None:
        count, columns = fast
        values = [(NUMERIC, c) for c in columns]
    else:
        rows = _rows(result, types == [DUAL])
        count = len(rows)
        for i, row in enumerate(rows):
            if len(row) != len(types):
                raise ValueError(
                    f"row {i + 1} of the answer has {len(row)} column(s); the answer has {len(types)}"
                )
        values = [(kind, _column_values(rows, c, kind)) for c, kind in enumerate(types)]
    out = [struct.pack("<4sII", b"ANSW", len(values), count)]
    out.append(b"".join(struct.pack("<I", kind) for kind, _ in values))
    for kind, column in values:
        if kind == NUMERIC:
            _encode_numbers(column, out)
        elif kind == TEXT:
            _encode_texts(column, out)
        else:
            _encode_numbers([n for n, _ in column], out)
            _encode_texts([s for _, s in column], out)
    return out


def _table_frame(table):
    """The TableDescription a script filled in, for the host: name, rows, then each field's data
    type, name and tags (lengths before texts, little-endian)."""

    def text(value):
        data = str(value).encode()
        return struct.pack("<I", len(data)) + data

    out = [text(table.name), struct.pack("<qI", int(table.numberOfRows), len(table.fields))]
    for field in table.fields:
        out.append(struct.pack("<i", int(field.dataType)))
        out.append(text(field.name))
        out.append(struct.pack("<I", len(field.tags)))
        out.extend(text(tag) for tag in field.tags)
    return b"".join(out)


def _dual_pairs(result):
    """True for a list of (number, text) pairs: one DUAL column, not two."""
    if _is_scalar(result) or isinstance(result, (numpy.ndarray, pandas.DataFrame)):
        return False
    rows = list(result)
    return bool(rows) and all(
        isinstance(r, tuple) and len(r) == 2 and isinstance(r[1], str) and not isinstance(r[0], str) for r in rows
    )


def _width(result):
    """How many columns Qlik's pandas example makes of `qResult` (without a TableDescription)."""
    if isinstance(result, pandas.DataFrame):
        return result.shape[1]
    if _is_scalar(result):
        return 1
    if isinstance(result, (list, tuple)):
        shape = numpy.array(result, dtype=object).shape if result else (0,)
        return 1 if len(shape) == 1 else shape[1]
    shape = getattr(result, "shape", None)
    if shape is not None:
        return 1 if len(shape) <= 1 else shape[1]
    return 1


def _expression_width(result):
    """How many columns an expression's value answers: its first row's."""
    if isinstance(result, pandas.DataFrame):
        return result.shape[1]
    if isinstance(result, numpy.ndarray):
        return 1 if result.ndim <= 1 else result.shape[1]
    if _is_scalar(result):
        return 1
    for row in result:
        return 1 if _is_scalar(row) else len(list(row))
    return 1


def _frame(names, params, columns):
    """`q`: one column per parameter, named after it; a DUAL parameter also as `_str`, `_num`."""
    data, labels = [], []
    for (name, kind), column in zip(params, columns):
        if kind == DUAL:
            numbers, texts = column
            data.append(pandas.Series(list(zip(numbers.tolist(), texts)), dtype=object))
            data.append(pandas.Series(texts, dtype=object))
            data.append(numbers)
            labels += [name, name + "_str", name + "_num"]
        elif kind == TEXT:
            # Object columns, as Qlik's example had them (pandas 3 would infer its `str` type,
            # whose groupby is slower here).
            data.append(pandas.Series(column, dtype=object))
            labels.append(name)
        else:
            data.append(column)
            labels.append(name)
    if not data:
        return pandas.DataFrame()
    frame = pandas.DataFrame({i: column for i, column in enumerate(data)})
    frame.columns = labels
    return frame


def _line(error, filename):
    """The line of `filename` (the script, or a function file) an exception came from, if any."""
    if isinstance(error, SyntaxError) and error.filename == filename:
        return error.lineno
    line = None
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_filename == filename:
            line = lineno
    return line


def _message(error, filename=_FILENAME):
    """The exception, with the line it came from: "(line N)" of a script, "(line N of f.py)" of a
    function file."""
    text = f"{type(error).__name__}: {error}"
    line = _line(error, filename)
    if line is None:
        return text
    return f"{text} (line {line})" if filename == _FILENAME else f"{text} (line {line} of {filename})"


def _send_error(error, out_of_memory, filename=_FILENAME):
    """Answers the host with `error`: for a MemoryError, `out_of_memory` (made in advance, since
    making a message may need memory); for any other, the exception with its line in `filename`."""
    if isinstance(error, MemoryError):
        _host.call(out_of_memory)
    else:
        _host.call(b"error" + _message(error, filename).encode("utf-8", "replace"))


def _list(texts):
    """A text column as a list (Qlik's `args` are lists)."""
    return texts.tolist() if isinstance(texts, numpy.ndarray) else texts


def _evaluate(script, params, return_type, columns):
    """Runs the script by the convention its form asks for; the answer's frame parts and table."""
    linecache.cache[_FILENAME] = (len(script), None, script.splitlines(True), _FILENAME)
    try:
        code = compile(script, _FILENAME, "eval", dont_inherit=True)
        expression = True
    except SyntaxError:
        code = compile(script, _FILENAME, "exec", dont_inherit=True)
        expression = False
    if expression:
        args = []
        for (_, kind), column in zip(params, columns):
            if kind == NUMERIC:
                args.append(column.tolist())
            elif kind == TEXT:
                args.append(_list(column))
            else:
                args.append([column[0].tolist(), _list(column[1])])
        result = eval(code, {"args": args, "numpy": numpy})
        width = 1 if return_type == DUAL and _dual_pairs(result) else _expression_width(result)
        types = [return_type] * width
        return _answer(result, types), None
    table = TableDescription()
    q = _frame([name for name, _ in params], params, columns)
    # One namespace (Qlik's example passes separate globals and locals to exec, where a function
    # or generator expression of the script cannot see the script's own imports and variables).
    scope = {"q": q, "numpy": numpy, "pandas": pandas, "table": table}
    exec(code, scope)
    if "qResult" not in scope:
        raise _NoResult()
    result = scope["qResult"]
    if scope.get("tableDescription") is True:
        types = [int(field.dataType) for field in table.fields]
        for kind in types:
            if kind not in (NUMERIC, TEXT, DUAL):
                raise ValueError(f"a field of the TableDescription has the data type {kind} (0, 1 or 2)")
        return _answer(result, types), _table_frame(table)
    width = 1 if return_type == DUAL and _dual_pairs(result) else _width(result)
    return _answer(result, [return_type] * width), None


class _NoResult(Exception):
    pass


def _sse_describe():
    """Tells the host, when it loads the engine, which language it runs."""
    _host.call(b"language" + LANGUAGE.encode())


def _reseed():
    """New random states for this instance, which starts from the snapshot's: Python's from the
    system's entropy, numpy's global one from 128 bits of it (what `numpy.random.seed()` draws
    too, through a SeedSequence that costs ~0.2 ms here against ~15 us for these). Run first in
    each instance: before an evaluation's script, and before a function file's own code (whose
    module-level draws would otherwise be the snapshot's in every call)."""
    random.seed()
    numpy.random.seed(numpy.frombuffer(os.urandom(16), dtype=numpy.uint32))


def _sse_evaluate():
    """One evaluation: the input from the host, the script run, the answer (or error) back."""
    _reseed()
    try:
        script, params, return_type, rows, columns = _read_input(_input())
        parts, table = _evaluate(script, params, return_type, columns)
    except _NoResult:
        _host.call(b"noresult")
        return
    except BaseException as error:  # the script's failure is the answer
        _send_error(error, b"error" b"MemoryError: the script ran out of memory")
        return
    if table is not None:
        _host.call(b"table" + table)
    _host.call(b"answer" + b"".join(parts))


# Python function files: a `.py` file in the functions folder whose functions, declared with the
# Python SDK's decorators, are served like a component's. Each instance runs the file afresh
# (`_sse_load_file`), then calls one function per batch (`_sse_call_file`).

_FILE_FUNCTIONS = {}  # the running file's functions by name, in the order it declared them
# True while a call runs a file its load declared: declarations are then read on first use.
_DECLARED_AT_LOAD = False
# Function types, as the host's frames number them: a tensor per batch, or over the whole call.
_SCALAR, _AGGREGATION, _TENSOR, _TENSOR_PER_CALL = 0, 1, 2, 3


class _FileFunction:
    __slots__ = ("name", "description", "function_type", "return_type", "params", "cacheable", "run", "table", "arrays")

    def __init__(self, name, description, function_type, return_type, params, cacheable, run, table=None, arrays=()):
        self.name = name
        self.description = description
        self.function_type = function_type
        self.return_type = return_type
        self.params = params
        self.cacheable = cacheable
        self.run = run
        self.table = table  # None, or the list of (field name, data type) a table function answers
        self.arrays = arrays  # per parameter: True where it takes its column as a numpy array


def _sse_guest_module():
    """The `sse_guest` module a function file imports: the decorators, `Dual` and `NAN` of the
    Python SDK (guests/python/sdk/sse_guest.py), declaring into this engine instead of a
    component; `Functions` and `Invocation` do nothing, so an `app.py` written for
    componentize-py serves unchanged."""
    import inspect
    import types
    import typing

    module = types.ModuleType("sse_guest", "sse-wasm functions in Python, served by the data-science engine.")

    class Dual(typing.NamedTuple):
        """A Qlik dual: a number with its display text (a date, a formatted amount)."""

        number: float
        text: str

    Dual.__module__ = "sse_guest"
    kinds = {float: NUMERIC, int: NUMERIC, str: TEXT, Dual: DUAL}
    # A column as a numpy array, without a Python object per value: float64 with NaN for null,
    # or an array of str (dtype object).
    Numbers = numpy.ndarray[typing.Any, numpy.dtype[numpy.float64]]
    Texts = numpy.ndarray[typing.Any, numpy.dtype[numpy.object_]]

    def column_kind(annotation, where):
        """The data type of a column parameter, and whether it comes as a numpy array."""
        for array, data_type in ((Numbers, NUMERIC), (Texts, TEXT)):
            if annotation == array:
                return data_type, True
        if typing.get_origin(annotation) not in (list, typing.List):
            raise TypeError(
                f"{where}: annotate columns as list[float], list[str], list[Dual], sse_guest.Numbers or sse_guest.Texts"
            )
        (annotation,) = typing.get_args(annotation)
        return kind(annotation, where, False), False

    def kind(annotation, where, columns):
        if columns:
            return column_kind(annotation, where)[0]
        if annotation not in kinds:
            raise TypeError(f"{where}: annotate with float, str or Dual, not {annotation!r}")
        return kinds[annotation]

    def declare(function_type, columns_in, columns_out, cacheable, fields=None):
        def register(f):
            if f.__name__ in _FILE_FUNCTIONS:
                raise ValueError(f"{f.__name__} is declared twice")
            if _DECLARED_AT_LOAD:
                # A call's run of a file its load declared: a function's types are read when it
                # is called, and only the called one's.
                _FILE_FUNCTIONS[f.__name__] = functools.partial(declaration, f, described=False)
            else:
                _FILE_FUNCTIONS[f.__name__] = declaration(f)
            return f

        def declaration(f, described=True):
            # Annotations that are objects already (not texts to evaluate) are the hints
            # themselves: a call reads them as they are (get_type_hints costs ~0.1 ms here).
            hints = getattr(f, "__annotations__", None)
            if described or not isinstance(hints, dict) or any(isinstance(hint, str) for hint in hints.values()):
                hints = typing.get_type_hints(f)
            names = list(inspect.signature(f).parameters)
            where = [f"{f.__name__}({n})" for n in names]
            if columns_in:
                typed = [column_kind(hints.get(n), w) for n, w in zip(names, where)]
            else:
                typed = [(kind(hints.get(n), w, False), False) for n, w in zip(names, where)]
            params = [(n, data_type) for n, (data_type, _) in zip(names, typed)]
            if fields is None:
                returns, table = kind(hints.get("return"), f"{f.__name__} -> ", columns_out), None
            else:
                table = [(str(n), kind(k, f"{f.__name__} field {n}", False)) for n, k in fields.items()]
                if not table:
                    raise ValueError(f"{f.__name__}: a table needs at least one field")
                returns = table[0][1]
            # The description is the load's to declare; a call does not read it.
            doc = (inspect.getdoc(f) or "").strip().splitlines() if described else []
            return _FileFunction(
                f.__name__,
                doc[0] if doc else "",
                function_type,
                returns,
                params,
                bool(cacheable),
                f,
                table,
                tuple(array for _, array in typed),
            )

        return register

    def scalar(f=None, *, cacheable=True):
        """Declares a row-by-row function: one value per parameter in, one value out."""
        register = declare(_SCALAR, False, False, cacheable)
        return register(f) if f else register

    def tensor(f=None, *, cacheable=True, per_call=False):
        """Declares a column function: one list per parameter in, a list as long out, per batch
        (with `per_call=True`, once over every row of the call)."""
        register = declare(_TENSOR_PER_CALL if per_call else _TENSOR, True, True, cacheable)
        return register(f) if f else register

    def table(f=None, *, fields, cacheable=True):
        """Declares a table function for `LOAD ... EXTENSION`: every row of the call in, a table of
        `fields` ({name: float, str or Dual}, in order) out, any number of rows: a list of rows, a
        2-D array or a DataFrame whose columns are the fields in order."""
        register = declare(_TENSOR_PER_CALL, True, False, cacheable, dict(fields))
        return register(f) if f else register

    def aggregation(f=None, *, cacheable=True):
        """Declares an aggregation: the columns of every row of the call in, one value out."""
        register = declare(_AGGREGATION, True, False, cacheable)
        return register(f) if f else register

    required = object()

    def dictionary(column):
        """(distinct values, codes) of a text column the host sent as a dimension, else None."""
        known = _DISTINCT.get(id(column))
        return known[1:] if known is not None and known[0] is column else None

    class Range:
        """An option's kind with bounds, for `options`' spec: `Range(int, 1)` a whole number of 1
        or more, `Range(float, 0, 0.5, above=True)` a number above 0 and at most 0.5 (`above` and
        `below` leave the low and the high bound out)."""

        def __init__(self, kind, low=None, high=None, *, above=False, below=False):
            if kind not in (int, float):
                raise TypeError("a Range is of int or float")
            self.kind, self.low, self.high, self.above, self.below = kind, low, high, above, below

        def holds(self, number):
            """True when `number` is within the bounds."""
            if self.low is not None and (number <= self.low if self.above else number < self.low):
                return False
            return self.high is None or (number < self.high if self.below else number <= self.high)

        def __str__(self):
            what = "a whole number" if self.kind is int else "a number"
            low, high = (b if b is None or isinstance(b, int) else f"{b:g}" for b in (self.low, self.high))
            if self.low is not None and self.high is not None and not (self.above or self.below):
                return f"{what} from {low} to {high}"
            bounds = []
            if self.low is not None:
                bounds.append(f"{'above' if self.above else 'at least'} {low}")
            if self.high is not None:
                bounds.append(f"{'below' if self.below else 'at most'} {high}")
            return " ".join([what, " and ".join(bounds)]).strip()

    def options(text, spec):
        """Reads Qlik-style options, `'periods=12, method=ets, return=upper'`, strictly against
        `spec`, {key: (kind, default)}: kind is int, float, bool, str, a `Range` of int or float,
        or a tuple of the words allowed; a default of `REQUIRED` makes the key required. `text`
        may be a column of the same options on every row (as Qlik sends a constant). An unknown or
        repeated key, a value of the wrong kind or out of its range, or a missing required key
        raises ValueError naming it and what is allowed. Returns {key: value} with every key of
        `spec`."""
        if isinstance(text, (list, tuple)) or hasattr(text, "tolist"):
            # The distinct values first: a constant column is one string object on every row, and
            # a column the host sent as distinct values and codes has them already.
            known = dictionary(text)
            if known is not None:
                given = {str(t) for t in known[0].tolist()}
            else:
                given = {str(t) for t in set(text.tolist() if hasattr(text, "tolist") else text)}
            if len(given) > 1:
                raise ValueError(f"the options differ between rows: {sorted(given)[:2]}; give one constant text")
            text = given.pop() if given else ""
        allowed = ", ".join(spec)
        found = {}
        for item in str(text).split(","):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not sep or not key:
                raise ValueError(f"option {item.strip()!r} is not key=value (options: {allowed})")
            if key not in spec:
                raise ValueError(f"unknown option {key!r} (options: {allowed})")
            if key in found:
                raise ValueError(f"option {key} is given twice")
            kind = spec[key][0]
            bounds = kind if isinstance(kind, Range) else None
            if bounds is not None:
                kind = bounds.kind
            try:
                if isinstance(kind, tuple):
                    if value.lower() not in kind:
                        raise ValueError
                    found[key] = value.lower()
                elif kind is bool:
                    words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
                    found[key] = words[value.lower()]
                elif kind is int:
                    found[key] = int(value)
                elif kind is float:
                    number = float(value)
                    if not math.isfinite(number):
                        raise ValueError
                    found[key] = number
                else:
                    if not value:
                        raise ValueError
                    found[key] = value
            except (ValueError, KeyError):
                expected = {int: "a whole number", float: "a number", bool: "true or false", str: "a text"}
                what = "one of " + ", ".join(kind) if isinstance(kind, tuple) else expected.get(kind, str(kind))
                raise ValueError(f"option {key}={value!r}: expected {bounds or what}") from None
            if bounds is not None and not bounds.holds(found[key]):
                raise ValueError(f"option {key}={value}: expected {bounds}")
        for key, (_, default) in spec.items():
            if key not in found:
                if default is required:
                    raise ValueError(f"option {key} is required (options: {allowed})")
                found[key] = default
        return found

    def features_at_once(rows, separator):
        """The feature matrix of `feature_matrix` in C loops (one join, one split, a `float` per
        value), when every row has as many values as the first and every value is a number or
        null; else None, and `feature_matrix` reads the rows one by one, as it reports what is
        wrong by row. A value's number is `float`'s whichever way: `float` strips whitespace as
        the one-by-one reading does, and takes neither "" nor "-"."""
        import itertools

        if len(separator) != 1 or separator == "\n" or len(rows) == 0:
            return None
        try:
            text = "\n".join(rows)
        except TypeError:
            return None
        # A line break inside a row would move its values to the next.
        if text.count("\n") != len(rows) - 1:
            return None
        counts = numpy.fromiter(map(str.count, rows, itertools.repeat(separator)), dtype=numpy.intp, count=len(rows))
        if (counts != counts[0]).any():
            return None
        values = text.replace("\n", separator).split(separator)
        shape = (len(rows), int(counts[0]) + 1)

        def numbers(values):
            return numpy.fromiter(map(float, values), dtype=float, count=len(values)).reshape(shape)

        try:
            return numbers(values)
        except ValueError:
            pass
        # A null among the numbers: NaN, as the one-by-one reading gives it.
        values = numpy.array(values, dtype=object)
        values[(values == "") | (values == "-")] = "nan"
        try:
            return numbers(values)
        except ValueError:
            return None

    # The largest feature: float32's, the precision scikit-learn's trees and forests compute in.
    largest_feature = float(numpy.finfo(numpy.float32).max)

    def feature_matrix(rows, separator=";"):
        """The feature matrix (a float array, a row per row) of rows of separated numbers, as Qlik
        sends several measures in one parameter (`Sum(A) & ';' & Sum(B)`): NaN for an empty
        value or Qlik's null `-`; every row must have as many values as the first, and every value
        is missing or within float32's range (±3.4e38)."""
        if not hasattr(rows, "__len__"):
            rows = list(rows)
        matrix = features_at_once(rows, separator)
        if matrix is None:
            split = [str(r).split(separator) for r in rows]
            width = len(split[0]) if split else 0
            matrix = numpy.full((len(split), width), numpy.nan)
            for i, values in enumerate(split):
                if len(values) != width:
                    raise ValueError(f"row {i + 1} has {len(values)} features, row 1 has {width}")
                for j, v in enumerate(values):
                    v = v.strip()
                    if v and v != "-":
                        try:
                            matrix[i, j] = float(v)
                        except ValueError:
                            raise ValueError(f"row {i + 1}, feature {j + 1}: {v!r} is not a number") from None
        # Beyond float32's range, scikit-learn's trees refuse the matrix without saying where, and
        # standardizing overflows (infinities are beyond it too).
        beyond = numpy.abs(matrix) > largest_feature
        if beyond.any():
            i, j = numpy.argwhere(beyond)[0]
            text = str(rows[i]).split(separator)[j].strip()
            if numpy.isinf(matrix[i, j]):
                raise ValueError(f"row {i + 1}, feature {j + 1}: {text!r} is not a finite number")
            raise ValueError(
                f"row {i + 1}, feature {j + 1}: {text!r} is beyond ±{largest_feature:.7g}, the range models compute in"
            )
        return matrix

    def finite(values, name="value"):
        """`values` as a float array, nulls as NaN; an infinite value (a client can send one) is
        refused by its row and `name`, as `feature_matrix` refuses an infinite feature."""
        values = numpy.asarray(values, dtype=float)
        infinite = numpy.isinf(values)
        if infinite.any():
            row = int(numpy.argmax(infinite))
            raise ValueError(f"row {row + 1}: {name} {values[row]:g} is not a finite number")
        return values

    def factorize(column):
        """(codes, uniques) of a text column, as `pandas.factorize` answers: each distinct value
        once, in order of first appearance (an object array), and each row's position among them
        (an intp array). A `Texts` column the host sent as distinct values and codes (a dimension)
        has them already: they are not hashed again."""
        known = dictionary(column)
        if known is not None:
            return known[1].astype(numpy.intp), known[0].copy()
        import pandas

        codes, uniques = pandas.factorize(numpy.asarray(column, dtype=object))
        return codes.astype(numpy.intp, copy=False), numpy.asarray(uniques, dtype=object)

    sign = numpy.uint64(1 << 63)

    def sort_keys(values):
        """Each number's bits made to sort as an unsigned integer (a negative number's inverted, a
        positive one's sign bit set), -0.0 as 0.0 and every NaN last, alike: the host's keys."""
        values = values + 0.0  # -0.0 + 0.0 is 0.0; a copy, so the caller's array stays as it was
        bits = values.view(numpy.uint64)
        keys = bits ^ ((bits.view(numpy.int64) >> 63).view(numpy.uint64) | sign)
        keys[numpy.isnan(values)] = numpy.uint64(0xFFFFFFFFFFFFFFFF)
        return keys

    def sorted_by_host(request, values, out_type):
        # The host sorts in buffers of this instance's own: the numbers, the answer and 24
        # bytes a number of scratch (sorting.rs).
        out = numpy.empty(len(values), dtype=out_type)
        scratch = numpy.empty(3 * len(values), dtype=numpy.uint64)
        address = [a.__array_interface__["data"][0] for a in (values, out, scratch)]
        _host.call(b"sort-" + request + struct.pack("<4I", len(values), *address))
        return out

    def column(values, name):
        values = numpy.ascontiguousarray(values, dtype=numpy.float64)
        if values.ndim != 1:
            raise ValueError(f"sse_guest.{name} takes one column, not an array of {values.ndim} dimensions")
        return values

    def order_of_keys(keys):
        # Outside the engine (the library's native runs): the same stable order by numpy's radix
        # sort over the keys' four 16-bit digits (lexsort sorts on its last key first).
        digits = numpy.ascontiguousarray(keys.astype("<u8", copy=False).view("<u2").reshape(-1, 4).T)
        return numpy.lexsort(digits) if len(keys) else numpy.empty(0, dtype=numpy.intp)

    def order(values):
        """The positions of `values` (numbers, NaN for null) in sorted order: what
        `numpy.argsort(values, kind="stable")` answers (ties in their order, NaN last), computed by
        the host natively: several times faster than numpy's sorts in this engine."""
        values = column(values, "order")
        if _host is not None and len(values):
            return sorted_by_host(b"order", values, numpy.intp)
        return order_of_keys(sort_keys(values))

    def ranks(values):
        """The average rank of each of `values` (numbers, NaN for null), 1 for the smallest; tied
        values share the mean of their ranks and NaN stays NaN: what pandas' `Series.rank()`
        answers (`scipy.stats.rankdata` for values without NaN), computed by the host natively."""
        values = column(values, "ranks")
        n = len(values)
        if _host is not None and n:
            return sorted_by_host(b"ranks", values, numpy.float64)
        keys = sort_keys(values)
        ranked = order_of_keys(keys)
        keys = keys[ranked]
        first = numpy.empty(n, dtype=bool)
        first[:1] = True
        numpy.not_equal(keys[1:], keys[:-1], out=first[1:])
        starts = numpy.flatnonzero(first)
        ends = numpy.append(starts[1:], n)
        out = numpy.empty(n)
        out[ranked] = numpy.repeat((starts + ends + 1) / 2.0, ends - starts)
        if n and keys[-1] == numpy.uint64(0xFFFFFFFFFFFFFFFF):
            out[numpy.isnan(values)] = numpy.nan
        return out

    def store(request):
        answer = _host.call(b"model-" + request)
        if answer[:1] != b"\x00":
            raise ModelStoreError(bytes(answer[1:]).decode("utf-8", "replace"))
        return bytes(answer[1:])

    class ModelStoreError(Exception):
        """The model store refused: no such model, a bad name, a size cap, no store at all."""

    def save_bytes(name, data):
        """Keeps `data` as the model `name` of the calling Qlik app, replacing one of that name."""
        name = str(name).encode("utf-8")
        store(b"save" + struct.pack("<I", len(name)) + name + bytes(data))

    def load_bytes(name):
        """The bytes of the calling app's model `name`, else of the shared model `name`."""
        return store(b"load" + str(name).encode("utf-8"))

    def save(name, obj):
        """Keeps `obj`, pickled, as the model `name` of the calling Qlik app."""
        import pickle

        save_bytes(name, pickle.dumps(obj, protocol=5))

    def load(name):
        """The object saved as `name` by this app (or shared by the operator), unpickled."""
        import pickle

        return pickle.loads(load_bytes(name))

    def models():
        """The calling app's models, then the shared ones: dicts of name, bytes, shared, modified."""
        rows = []
        for line in store(b"list").decode("utf-8").splitlines():
            name, size, shared, modified = line.split("\t")
            rows.append({"name": name, "bytes": int(size), "shared": shared == "1", "modified": int(modified)})
        return rows

    class Functions:
        """Nothing to do here: the engine serves the declared functions."""

    class Invocation:
        """Nothing to do here: the engine serves the declared functions."""

    for name, value in {
        "Dual": Dual,
        "Numbers": Numbers,
        "Texts": Texts,
        "NAN": math.nan,
        "REQUIRED": required,
        "Range": Range,
        "options": options,
        "feature_matrix": feature_matrix,
        "finite": finite,
        "factorize": factorize,
        "order": order,
        "ranks": ranks,
        "scalar": scalar,
        "tensor": tensor,
        "table": table,
        "aggregation": aggregation,
        "Functions": Functions,
        "Invocation": Invocation,
        "ModelStoreError": ModelStoreError,
        "save": save,
        "load": load,
        "save_bytes": save_bytes,
        "load_bytes": load_bytes,
        "models": models,
    }.items():
        setattr(module, name, value)
    module.__all__ = [
        "Dual", "Functions", "Invocation", "ModelStoreError", "NAN", "Numbers", "REQUIRED", "Range", "Texts",
        "aggregation", "feature_matrix", "finite", "load", "load_bytes", "models", "options", "order", "ranks", "save",
        "save_bytes", "scalar", "table", "tensor",
    ]
    return module


sys.modules["sse_guest"] = _sse_guest_module()


def _run_file(filename, source, code=None, send_code=True):
    """Runs the function file `filename` in a module of its own, from `code` when its load
    compiled it already (else compiled here, and sent to the host as `code` for later calls
    unless `send_code` is false); the functions it declared, in `_FILE_FUNCTIONS`."""
    import types

    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType("__sse_function_file__")
    module.__file__ = filename
    sys.modules[module.__name__] = module
    if code is None:
        code = compile(source, filename, "exec", dont_inherit=True)
        if send_code:
            _host.call(b"code" + marshal.dumps(code))
    exec(code, module.__dict__)


def _declarations():
    """The frame of the file's declarations: their count, then each one's name, description,
    function type, return type, cacheable flag, parameters (type, name), and its table's field
    count (0: not a table function), name and fields (type, name)."""

    def text(value):
        data = value.encode()
        return struct.pack("<I", len(data)) + data

    out = [struct.pack("<I", len(_FILE_FUNCTIONS))]
    for f in _FILE_FUNCTIONS.values():
        out += [text(f.name), text(f.description)]
        out.append(struct.pack("<4I", f.function_type, f.return_type, f.cacheable, len(f.params)))
        for name, kind in f.params:
            out += [struct.pack("<I", kind), text(name)]
        out.append(struct.pack("<I", len(f.table or ())))
        if f.table:
            out.append(text(f.name))
            for name, kind in f.table:
                out += [struct.pack("<I", kind), text(name)]
    return b"".join(out)


_FILENAME_RUN = None  # the function file this instance runs


def _named_frame():
    """The host's frame for a function file: the file's name (its length first), kept as the file
    this instance runs, and where the rest of the frame starts."""
    global _FILENAME_RUN
    view = memoryview(_input())
    (length,) = struct.unpack_from("<I", view, 0)
    _FILENAME_RUN = bytes(view[4 : 4 + length]).decode()
    return view, 4 + length


def _sse_load_file(declare=True):
    """Runs the function file the host sends (its name, then its source), and tells the host its
    compiled code and what it declares; with `declare` false, for a call of a file whose code the
    host does not keep, runs it only (declarations are then read when a function is called)."""
    global _DECLARED_AT_LOAD
    _reseed()
    view, at = _named_frame()
    _DECLARED_AT_LOAD = not declare
    try:
        _run_file(_FILENAME_RUN, bytes(view[at:]).decode(), send_code=declare)
        declarations = _declarations() if declare else None
    except BaseException as error:  # the file's failure is the answer
        _send_error(error, b"error" b"MemoryError: the file ran out of memory", _FILENAME_RUN)
        return
    if declare:
        _host.call(b"functions" + declarations)


def _sse_run_file():
    """Runs the function file again, for a call, from the code its load compiled (the frame: the
    file's name, its code, each with its length first, then its source)."""
    global _DECLARED_AT_LOAD
    _reseed()
    view, at = _named_frame()
    (length,) = struct.unpack_from("<I", view, at)
    _DECLARED_AT_LOAD = True
    try:
        code = marshal.loads(view[at + 4 : at + 4 + length])
        _run_file(_FILENAME_RUN, bytes(view[at + 4 + length :]).decode(), code)
    except BaseException as error:  # the file's failure is the answer
        _send_error(error, b"error" b"MemoryError: the file ran out of memory", _FILENAME_RUN)


def _file_values(column, kind, array):
    """A column of the input frame as the SDK hands it: a list of floats, texts or `Dual`s, or
    (`array`) a numpy array of its own."""
    if array:
        if kind == NUMERIC:
            # A writable view of the call's own input buffer, which nothing else writes to.
            return column
        return column if isinstance(column, numpy.ndarray) else numpy.array(column, dtype=object)
    if kind == NUMERIC:
        return column.tolist()
    if kind == TEXT:
        return _list(column)
    dual = sys.modules["sse_guest"].Dual
    numbers, texts = column
    return [dual(n, s) for n, s in zip(numbers.tolist(), _list(texts))]


def _sse_call_file():
    """One batch of a call (all the rows, for an aggregation): the input from the host, the
    function run on it, the answer (or error) back. The instance was reseeded before the file
    ran in it."""
    try:
        name, params, return_type, rows, columns = _read_input(_input())
        f = _FILE_FUNCTIONS.get(name)
        if f is None:
            raise LookupError(f"{_FILENAME_RUN} no longer declares {name}")
        if not isinstance(f, _FileFunction):
            f = _FILE_FUNCTIONS[name] = f()
        arrays = f.arrays or (False,) * len(params)
        values = [_file_values(column, kind, array) for (_, kind), column, array in zip(params, columns, arrays)]
        if f.function_type == _SCALAR:
            rows_in = zip(*values) if values else (() for _ in range(rows))
            result = [f.run(*row) for row in rows_in]
        elif f.table is not None:
            result = f.run(*values)
            if _is_scalar(result):
                raise TypeError(f"{name} answered {type(result).__name__} {result!r}, not rows of a table")
            parts = _answer(result, [kind for _, kind in f.table])
        elif f.function_type in (_TENSOR, _TENSOR_PER_CALL):
            result = f.run(*values)
            if _is_scalar(result):
                raise TypeError(f"{name} answered {type(result).__name__} {result!r}, not a list of {rows} values")
            result = list(result) if not isinstance(result, (numpy.ndarray, pandas.Series)) else result
            if len(result) != rows:
                raise ValueError(f"{name} answered {len(result)} values for {rows} rows")
        else:
            result = [f.run(*values)]
        if f.table is None:
            parts = _answer(result, [return_type])
    except BaseException as error:  # the function's failure is the answer
        _send_error(error, b"error" b"MemoryError: the function ran out of memory", _FILENAME_RUN)
        return
    _host.call(b"answer" + b"".join(parts))

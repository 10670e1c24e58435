"""sse-wasm functions in Python: declare plain Python functions, and this module serves them
through the `qlik:sse/functions` interface (componentize-py's `Functions` and `Invocation`).

    from sse_guest import Functions, scalar, aggregation

    @scalar
    def Multiply(a: float, b: float) -> float:
        "Multiplies two numbers."
        return a * b

Annotations give Qlik's types: `float` is NUMERIC, `str` is STRING, `Dual` is DUAL. A
`@scalar` function takes one value per parameter and answers one row at a time; a `@tensor`
function takes whole columns (lists) of a batch and answers a list; an `@aggregation` takes the
columns of every row of the call and answers one value. The docstring's first line is the
description. An exception fails the call with its message, which Qlik shows to the user.

`save(name, obj)` keeps a model (pickled) for later calls from the same Qlik app, and
`load(name)` gives it back; `save_bytes`, `load_bytes` and `models()` work at the byte level.
"""

import inspect
import math
import typing
from typing import Any, Callable, List, NamedTuple

from componentize_py_types import Err
from wit_world.imports import types as t

try:
    # The plugin world imports the model store; the script-engine world, which shares this
    # module, has none (and does not carry pickle).
    from wit_world.imports import models as _store

    import pickle
except ImportError:
    _store = None

__all__ = [
    "Dual",
    "Functions",
    "Invocation",
    "ModelStoreError",
    "aggregation",
    "load",
    "load_bytes",
    "models",
    "save",
    "save_bytes",
    "scalar",
    "strings",
    "tensor",
    "texts",
    "NAN",
]

NAN = math.nan


class Dual(NamedTuple):
    """A Qlik dual: a number with its display text (a date, a formatted amount)."""

    number: float
    text: str


_KINDS = {float: t.DataType.NUMERIC, int: t.DataType.NUMERIC, str: t.DataType.TEXT, Dual: t.DataType.DUAL}


class _Function(NamedTuple):
    definition: t.FunctionDef
    run: Callable[..., Any]
    param_types: List[t.DataType]
    return_type: t.DataType


_registry: List[_Function] = []


def _kind(annotation: Any, where: str, columns: bool) -> t.DataType:
    if columns:
        if typing.get_origin(annotation) not in (list, List):
            raise TypeError(f"{where}: annotate columns as list[float], list[str] or list[Dual]")
        (annotation,) = typing.get_args(annotation)
    if annotation not in _KINDS:
        raise TypeError(f"{where}: annotate with float, str or Dual, not {annotation!r}")
    return _KINDS[annotation]


def _declare(function_type: t.FunctionType, mode: t.Mode, columns_in: bool, columns_out: bool, cacheable: bool):
    def register(f: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(f)
        names = list(inspect.signature(f).parameters)
        params = [t.Param(n, _kind(hints.get(n), f"{f.__name__}({n})", columns_in)) for n in names]
        returns = _kind(hints.get("return"), f"{f.__name__} -> ", columns_out)
        doc = (inspect.getdoc(f) or "").strip().splitlines()
        definition = t.FunctionDef(
            name=f.__name__,
            description=doc[0] if doc else "",
            function_type=function_type,
            return_type=returns,
            params=params,
            mode=mode,
            table=None,
            cacheable=cacheable,
        )
        _registry.append(_Function(definition, f, [p.data_type for p in params], returns))
        return f

    return register


def scalar(f=None, *, cacheable: bool = True):
    """Declares a row-by-row function: one value per parameter in, one value out."""
    register = _declare(t.FunctionType.SCALAR, t.Mode.PER_BATCH, False, False, cacheable)
    return register(f) if f else register


def tensor(f=None, *, cacheable: bool = True):
    """Declares a column function: one list per parameter in, a list as long out, per batch."""
    register = _declare(t.FunctionType.TENSOR, t.Mode.PER_BATCH, True, True, cacheable)
    return register(f) if f else register


def aggregation(f=None, *, cacheable: bool = True):
    """Declares an aggregation: the columns of every row of the call in, one value out."""
    register = _declare(t.FunctionType.AGGREGATION, t.Mode.PER_CALL, True, False, cacheable)
    return register(f) if f else register


def texts(s: t.Strings) -> List[str]:
    """The values of a string column."""
    data, offsets = s.data, s.offsets
    return [data[a:b].decode("utf-8") for a, b in zip(offsets, offsets[1:])]


def strings(values: List[str]) -> t.Strings:
    """A string column of `values`."""
    encoded = [v.encode("utf-8") for v in values]
    offsets, end = [0], 0
    for e in encoded:
        end += len(e)
        offsets.append(end)
    return t.Strings(b"".join(encoded), offsets)


def _values(column: t.Column) -> list:
    if isinstance(column, t.Column_Numeric):
        return list(column.value)
    if isinstance(column, t.Column_Text):
        return texts(column.value)
    return [Dual(n, s) for n, s in zip(column.value.numbers, texts(column.value.strings))]


def _column(values: list, kind: t.DataType) -> t.Column:
    if kind == t.DataType.NUMERIC:
        return t.Column_Numeric([float(v) for v in values])
    if kind == t.DataType.TEXT:
        return t.Column_Text(strings([str(v) for v in values]))
    duals = [v if isinstance(v, Dual) else Dual(float(v), str(v)) for v in values]
    return t.Column_Dual(t.Duals([float(d.number) for d in duals], strings([d.text for d in duals])))


class ModelStoreError(Exception):
    """The model store refused; `fault` says why: "name", "limit", "missing", "storage" or "off".
    A function that lets it propagate fails the call with the refusal's own gRPC code."""

    def __init__(self, message: str, fault: str) -> None:
        super().__init__(message)
        self.fault = fault


def _stored(name: str, *args: Any) -> Any:
    if _store is None:
        raise ModelStoreError("scripts keep no models: only functions do", "off")
    try:
        return getattr(_store, name)(*args)
    except Err as e:
        raise ModelStoreError(e.value.message, e.value.fault.name.lower()) from None


def save_bytes(name: str, data: bytes) -> None:
    """Keeps `data` as the model `name` of the calling Qlik app, replacing one of that name."""
    _stored("save", str(name), bytes(data))


def load_bytes(name: str) -> bytes:
    """The bytes of the calling app's model `name`, else of the operator's shared model `name`."""
    return bytes(_stored("load", str(name)))


def save(name: str, obj: Any) -> None:
    """Keeps `obj`, pickled, as the model `name` of the calling Qlik app."""
    save_bytes(name, pickle.dumps(obj, protocol=5))


def load(name: str) -> Any:
    """The object saved as `name` by this app (or shared by the operator), unpickled."""
    return pickle.loads(load_bytes(name))


def models() -> List[dict]:
    """The calling app's models, then the shared ones: dicts of name, bytes, shared, modified."""
    return [
        {"name": m.name, "bytes": m.bytes, "shared": m.shared, "modified": m.modified}
        for m in _stored("list")
    ]


def _failing(f: Callable[..., Any]) -> Callable[..., Any]:
    """Turns an exception of the user's code into the `err` the host reports to Qlik."""

    def guarded(*args):
        try:
            return f(*args)
        except Err:
            raise
        except Exception as e:  # every failure of user code is the call's answer
            raise Err(f"{type(e).__name__}: {e}")

    return guarded


class Functions:
    """The `functions` interface, serving every declared function."""

    def describe(self) -> List[t.FunctionDef]:
        return [f.definition for f in _registry]

    @_failing
    def call(self, function: int, input: t.Batch) -> t.Batch:
        f = _registry[function]
        columns = [_values(c) for c in input.columns]
        if f.definition.function_type == t.FunctionType.SCALAR:
            rows = zip(*columns) if columns else ([] for _ in range(input.rows))
            answer = [f.run(*row) for row in rows]
        else:
            answer = list(f.run(*columns))
            if len(answer) != input.rows:
                raise ValueError(f"{f.definition.name} answered {len(answer)} rows for {input.rows}")
        return t.Batch(input.rows, [_column(answer, f.return_type)])


class Invocation:
    """One call of an aggregation: collects the columns, answers in `finish`."""

    def __init__(self, function: int) -> None:
        self.function = _registry[function]
        self.columns: List[list] = [[] for _ in self.function.param_types]

    @_failing
    def update(self, input: t.Batch) -> t.Batch:
        for collected, column in zip(self.columns, input.columns):
            collected.extend(_values(column))
        return t.Batch(0, [_column([], self.function.return_type)])

    @_failing
    def finish(self) -> t.Batch:
        answer = self.function.run(*self.columns)
        return t.Batch(1, [_column([answer], self.function.return_type)])

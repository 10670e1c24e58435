"""One evaluation of a Qlik script in Python: collects the columns, evaluates, answers."""

import builtins
import math
import statistics
from collections import OrderedDict
from typing import Any, List

from componentize_py_types import Err
from sse_guest import strings, texts
from wit_world.exports.scripts import Script
from wit_world.imports import types as t

__all__ = ["Evaluation"]

# Compiled scripts by text: a chart sends the same script for every dimension value.
_compiled: "OrderedDict[str, Any]" = OrderedDict()
_MAX_COMPILED = 256


def _compile(text: str):
    code = _compiled.get(text)
    if code is not None:
        _compiled.move_to_end(text)
        return code
    try:
        code = (compile(text, "<script>", "eval"), True)
    except SyntaxError:
        # Not one expression: statements that assign `result`. A real syntax error is reported
        # as the statements' one, which names the line.
        code = (compile(text, "<script>", "exec"), False)
    _compiled[text] = code
    if len(_compiled) > _MAX_COMPILED:
        _compiled.popitem(last=False)
    return code


# What this engine does not have and the data-science engine does.
_DATASCI = ("numpy", "pandas", "scipy", "sklearn", "statsmodels")


def _message(e: BaseException) -> str:
    message = f"{type(e).__name__}: {e}"
    name = getattr(e, "name", None) or ""
    if isinstance(e, (NameError, ImportError)) and name.split(".")[0] in _DATASCI:
        message += " (numpy, pandas, scipy, scikit-learn and statsmodels are in the data-science engine: start the script with #!pandas)"
    return message


def _number(v: Any) -> float:
    if v is None:
        return math.nan
    if isinstance(v, (str, bytes)):
        raise TypeError(f"the script returned the text {v!r} where a number is expected (use ScriptEvalStr)")
    return float(v)


def _text(v: Any) -> str:
    return "" if v is None else str(v)


class Evaluation:
    """The `evaluation` resource: `update` collects columns, `finish` evaluates the script."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.columns: List[Any] = []
        for p in script.params:
            self.columns.append([[], []] if p.data_type == t.DataType.DUAL else [])
        self.error = None
        try:
            self.code, self.expression = _compile(script.text)
        except SyntaxError as e:
            self.error = _message(e)

    def update(self, input: t.Batch) -> None:
        if self.error:
            raise Err(self.error)
        for collected, column in zip(self.columns, input.columns):
            if isinstance(column, t.Column_Numeric):
                collected.extend(column.value)
            elif isinstance(column, t.Column_Text):
                collected.extend(texts(column.value))
            else:
                collected[0].extend(column.value.numbers)
                collected[1].extend(texts(column.value.strings))

    def finish(self) -> t.Batch:
        if self.error:
            raise Err(self.error)
        scope = {"args": self.columns, "math": math, "statistics": statistics, "__builtins__": builtins}
        try:
            if self.expression:
                result = eval(self.code, scope)
            else:
                exec(self.code, scope)
                if "result" not in scope:
                    raise NameError("the script is not one expression and assigns no `result`")
                result = scope["result"]
            return self._answer(result)
        except Err:
            raise
        except Exception as e:  # the script's own failure is the call's answer
            raise Err(_message(e))

    def _answer(self, result: Any) -> t.Batch:
        scalar = isinstance(result, (str, bytes)) or not hasattr(result, "__iter__")
        rows = [result] if scalar else result if isinstance(result, list) else list(result)
        kind = self.script.return_type
        if not any(isinstance(r, (list, tuple)) for r in rows):
            return t.Batch(len(rows), [self._column(rows, kind)])
        rows = [list(r) if isinstance(r, (list, tuple)) else [r] for r in rows]
        width = len(rows[0])
        for i, row in enumerate(rows):
            if len(row) != width:
                raise ValueError(f"row {i + 1} of the answer has {len(row)} columns, row 1 has {width}")
        if width == 0:
            raise ValueError("the answer has rows without columns")
        return t.Batch(len(rows), [self._column([row[c] for row in rows], kind) for c in range(width)])

    @staticmethod
    def _column(values: List[Any], kind: t.DataType) -> t.Column:
        if kind == t.DataType.NUMERIC:
            if not any(isinstance(v, str) for v in values):
                try:
                    return t.Column_Numeric(list(map(float, values)))
                except TypeError:
                    pass  # None among the values, or something float() refuses: the careful way
            return t.Column_Numeric([_number(v) for v in values])
        if kind == t.DataType.TEXT:
            return t.Column_Text(strings([_text(v) for v in values]))
        pairs = [v if isinstance(v, (list, tuple)) and len(v) == 2 else (v, _text(v)) for v in values]
        return t.Column_Dual(t.Duals([_number(n) for n, _ in pairs], strings([_text(s) for _, s in pairs])))

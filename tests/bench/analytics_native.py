"""The analytics bench's reference: one function of the library run natively, outside any
sandbox, with the data-science engine's `sse_guest` module, on the columns the bench sends.

Usage: python analytics_native.py DRIVER LIBRARY_FILE FUNCTION REPEATS < columns.json
Prints the median seconds of REPEATS calls.

`library` and `as_the_engine_hands` serve other native runs of the library too (the tests' sweep
of hostile inputs).
"""

import ast
import functools
import json
import math
import statistics
import struct
import sys
import time
import warnings

import numpy


class _FileFunction:
    def __init__(self, *declaration):
        self.declaration = declaration


def library(driver, files):
    """The engine's `sse_guest` module made from `driver` (installed as `sse_guest`), and the
    functions `files` define, by name, each with its declaration (`sse_guest`'s record)."""
    tree = ast.parse(open(driver, encoding="utf-8").read())
    module_of = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_sse_guest_module")
    names = {
        "math": math, "numpy": numpy, "struct": struct, "NUMERIC": 1, "TEXT": 0, "DUAL": 2, "_FILE_FUNCTIONS": {},
        "_host": None,
        "_DISTINCT": {}, "_DECLARED_AT_LOAD": False, "functools": functools, "_SCALAR": 0, "_AGGREGATION": 1,
        "_TENSOR": 2, "_TENSOR_PER_CALL": 3, "_FileFunction": _FileFunction,
    }
    exec(compile(ast.Module(body=[module_of], type_ignores=[]), driver, "exec"), names)
    sys.modules["sse_guest"] = names["_sse_guest_module"]()
    defined = {}
    for file in files:
        exec(compile(open(file, encoding="utf-8").read(), file, "exec"), defined)
    declared = names["_FILE_FUNCTIONS"]
    return {name: (defined[name], declared[name].declaration) for name in declared}


def as_the_engine_hands(declaration, columns):
    """`columns` (lists, NaN for a null number) as the engine hands them to the function: the
    columns it takes as numpy arrays (`sse_guest.Numbers`, `Texts`) as arrays."""
    columns = list(columns)
    for i, ((_, kind), array) in enumerate(zip(declaration[4], declaration[8])):
        if array:
            columns[i] = numpy.array(columns[i], dtype=float if kind == 1 else object)
    return columns


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    driver, library_file, function, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    run, declaration = library(driver, [library_file])[function]
    columns = json.load(sys.stdin)
    columns = [[math.nan if v is None else v for v in column] for column in columns]
    columns = as_the_engine_hands(declaration, columns)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(*columns)
        times.append(time.perf_counter() - started)
    print(statistics.median(times))

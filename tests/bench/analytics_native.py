"""The analytics bench's reference: one function of the library run natively, outside any
sandbox, with the data-science engine's `sse_guest` module, on the columns the bench sends.

Usage: python analytics_native.py DRIVER LIBRARY_FILE FUNCTION REPEATS < columns.json
Prints the median seconds of REPEATS calls.
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

warnings.simplefilter("ignore")
driver, library_file, function, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
tree = ast.parse(open(driver, encoding="utf-8").read())
module_of = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_sse_guest_module")


class _FileFunction:
    def __init__(self, *declaration):
        self.declaration = declaration


names = {
    "math": math, "numpy": numpy, "struct": struct, "NUMERIC": 1, "TEXT": 0, "DUAL": 2, "_FILE_FUNCTIONS": {},
    "_DISTINCT": {}, "_DECLARED_AT_LOAD": False, "functools": functools, "_SCALAR": 0, "_AGGREGATION": 1, "_TENSOR": 2, "_TENSOR_PER_CALL": 3, "_FileFunction": _FileFunction,
}
exec(compile(ast.Module(body=[module_of], type_ignores=[]), driver, "exec"), names)
sys.modules["sse_guest"] = names["_sse_guest_module"]()
library = {}
exec(compile(open(library_file, encoding="utf-8").read(), library_file, "exec"), library)
columns = json.load(sys.stdin)
columns = [[math.nan if v is None else v for v in column] for column in columns]
# Columns the function takes as numpy arrays (`sse_guest.Numbers`, `Texts`) come as arrays, as
# the engine hands them.
declaration = names["_FILE_FUNCTIONS"][function].declaration
for i, ((_, kind), array) in enumerate(zip(declaration[4], declaration[8])):
    if array:
        columns[i] = numpy.array(columns[i], dtype=float if kind == 1 else object)
times = []
for _ in range(repeats):
    started = time.perf_counter()
    library[function](*columns)
    times.append(time.perf_counter() - started)
print(statistics.median(times))

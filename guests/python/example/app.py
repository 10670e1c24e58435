"""Example sse-wasm functions in Python: a scalar, an aggregation and a string function."""

import math

from sse_guest import Functions, aggregation, scalar

__all__ = ["Functions"]


@scalar
def Multiply(a: float, b: float) -> float:
    """Multiplies two numbers, row by row."""
    return a * b


@aggregation
def GeometricMean(values: list[float]) -> float:
    """The geometric mean of the positive values; NaN when there are none."""
    logs = [math.log(v) for v in values if v > 0]
    return math.exp(sum(logs) / len(logs)) if logs else math.nan


@scalar
def TitleCase(text: str) -> str:
    """Capitalizes every word."""
    return text.title()

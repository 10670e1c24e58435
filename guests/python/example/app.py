"""Example sse-wasm functions in Python: a scalar, an aggregation and a string function, and a
pair that keeps a model between calls (saved by a load script, used by a chart)."""

import math

from sse_guest import Functions, aggregation, load, save, scalar

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


@aggregation(cacheable=False)
def SaveMean(names: list[str], values: list[float]) -> float:
    """Keeps the mean of the values as model `name` (the first row's) of this Qlik app; answers it."""
    present = [v for v in values if not math.isnan(v)]
    mean = sum(present) / len(present) if present else math.nan
    save(names[0] if names else "", {"mean": mean, "count": len(present)})
    return mean


@scalar(cacheable=False)
def SavedMean(name: str) -> float:
    """The mean kept as model `name` by SaveMean in this Qlik app."""
    return load(name)["mean"]

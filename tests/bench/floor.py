"""The analytics bench's floor: one function per family of the library, taking the same parameters
and answering in the same shape, that does nothing but count its rows. Its call is what a library
call costs before the library's own code runs: the rows' transfer, the engine's instance, the
driver handing the columns over as the function's parameter types, and the answer's way back.
"""

import numpy
from sse_guest import Numbers, Texts, aggregation, table, tensor


@aggregation
def Floor_Correlation(x: Numbers, y: Numbers, options: Texts) -> float:
    """The rows of Correlation's call."""
    return float(len(x))


@tensor(per_call=True)
def Floor_Isolation_Forest(features: list[str], options: list[str]) -> list[float]:
    """A number per row, as Isolation_Forest answers."""
    return numpy.zeros(len(features))


@tensor(per_call=True)
def Floor_Cluster(features: list[str], options: list[str]) -> list[float]:
    """A number per row, as Cluster answers."""
    return numpy.zeros(len(features))


@tensor(per_call=True)
def Floor_Forecast(date: list[float], value: list[float], options: list[str]) -> list[float]:
    """A number per row, as Forecast answers."""
    return numpy.zeros(len(date))


@tensor(per_call=True)
def Floor_Predict(target: list[float], features: list[str], options: list[str]) -> list[float]:
    """A number per row, as Predict answers."""
    return numpy.zeros(len(target))


@table(fields={"Rows": float})
def Floor_Association_Rules(transaction: Texts, item: Texts, options: Texts):
    """One row, as a table function of Association_Rules' parameters."""
    return [(float(len(transaction)),)]

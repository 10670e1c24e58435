"""Forecasting, ready-made: exponential smoothing (ETS, Holt-Winters) and (S)ARIMA(X) from
statsmodels, with prediction intervals. Served by the data-science engine.

Chart:        Wasm.Forecast(MonthStart, Sum(Sales), 'method=ets, return=forecast')
              Wasm.Forecast(MonthStart, Sum(Sales), 'method=arima, seasonal_periods=12, return=upper')
              Wasm.Forecast_X(MonthStart, Sum(Sales), Sum(Promotions), 'p=1, d=1, q=0')
Load script:  LOAD * EXTENSION Wasm.Forecast_Table(Sales{Month, Amount, 'periods=12, method=ets'});

Dates are Qlik's serial numbers (days since 30 December 1899), one row per period. In a chart,
the rows after the last known value whose value is null are the periods forecast (extend the
dimension with the months to come); in a load script, Forecast_Table appends `periods` rows
itself, dated by the series' frequency. Rows may come in any order; they are read in date order.
"""

import math
import warnings

import numpy
import pandas
import sse_guest
import statsmodels.tsa.exponential_smoothing.ets
import statsmodels.tsa.statespace.sarimax
from sse_guest import REQUIRED, Range, table, tensor

COMMON = {
    "method": (("ets", "arima"), "ets"),
    "frequency": (("auto", "day", "week", "month", "quarter", "year"), "auto"),
    "seasonal_periods": (Range(int, 1), None),
    "level": (Range(float, 0, 1, above=True, below=True), 0.95),
    # ETS (Holt-Winters): additive errors; trend and season additive, multiplicative or none.
    "trend": (("add", "mul", "none"), "add"),
    "damped": (bool, False),
    "seasonal": (("auto", "add", "mul", "none"), "auto"),
    # (S)ARIMA: order (p, d, q) and seasonal order (sp, sd, sq, seasonal_periods).
    "p": (Range(int, 0), 1),
    "d": (Range(int, 0), 1),
    "q": (Range(int, 0), 1),
    "sp": (Range(int, 0), 0),
    "sd": (Range(int, 0), 0),
    "sq": (Range(int, 0), 0),
}
CHART = {**COMMON, "return": (("forecast", "lower", "upper", "fitted", "residual"), "forecast")}
CHART_X = {**CHART, "method": (("arima",), "arima")}
# Periods to append in a load script: up to 100,000 (274 years of days).
LOAD = {**COMMON, "periods": (Range(int, 0, 100_000), REQUIRED)}
# Median spacing (days) of each frequency, and the seasonal period it implies.
FREQUENCIES = {"day": (1, 7), "week": (7, 52), "month": (30.4, 12), "quarter": (91.3, 4), "year": (365.25, 1)}
EPOCH = pandas.Timestamp("1899-12-30")


def _frequency(dates, o):
    """The series' frequency: given, or the one whose spacing is nearest the median spacing."""
    if o["frequency"] != "auto":
        return o["frequency"]
    if len(dates) < 2:
        raise ValueError("a forecast needs at least two dated values")
    step = float(numpy.median(numpy.diff(dates)))
    name = min(FREQUENCIES, key=lambda f: abs(math.log(max(step, 1e-9) / FREQUENCIES[f][0])))
    if abs(math.log(max(step, 1e-9) / FREQUENCIES[name][0])) > 0.25:
        raise ValueError(f"the dates are {step:g} days apart: give frequency=day, week, month, quarter or year")
    return name


def _next_dates(last, frequency, count):
    """The serial dates of the `count` periods after `last`."""
    if frequency in ("day", "week"):
        step = FREQUENCIES[frequency][0]
        return [last + step * (k + 1) for k in range(count)]
    months = {"month": 1, "quarter": 3, "year": 12}[frequency]
    start = EPOCH + pandas.Timedelta(days=math.floor(last))
    return [
        float((start + pandas.DateOffset(months=months * (k + 1)) - EPOCH).days) + (last - math.floor(last))
        for k in range(count)
    ]


def _fit(history, horizon, o, frequency, exog=None, future_exog=None):
    """Fits the model to `history` (NaN where a value is missing) and answers (fitted, lower,
    upper) over the history and (forecast, lower, upper) over the `horizon` periods after it."""
    with warnings.catch_warnings():
        # statsmodels' estimation warnings (starting values, convergence) are not the user's errors.
        warnings.simplefilter("ignore")
        return _fit_quietly(history, horizon, o, frequency, exog, future_exog)


def _fit_quietly(history, horizon, o, frequency, exog, future_exog):
    season = o["seasonal_periods"] or FREQUENCIES[frequency][1]
    alpha = 1.0 - o["level"]
    n = len(history)
    y = pandas.Series(history)
    if o["method"] == "ets":
        seasonal = o["seasonal"]
        if seasonal == "auto":
            seasonal = "add" if season > 1 and y.notna().sum() >= 2 * season else "none"
        if seasonal != "none" and season < 2:
            raise ValueError(f"option seasonal={seasonal} needs seasonal_periods of 2 or more")
        if seasonal != "none" and n < 2 * season:
            raise ValueError(
                f"option seasonal={seasonal} needs two seasons of history ({2 * season} periods with"
                f" seasonal_periods={season}), and the history has {n}"
            )
        y = y.interpolate(limit_direction="both")
        for name, kind in (("trend", o["trend"]), ("seasonal", seasonal)):
            if kind == "mul" and y.min() <= 0:
                raise ValueError(f"option {name}=mul needs every value above 0, and the history holds {y.min():g}")
        model = statsmodels.tsa.exponential_smoothing.ets.ETSModel(
            y,
            error="add",
            trend=None if o["trend"] == "none" else o["trend"],
            damped_trend=o["damped"] and o["trend"] != "none",
            seasonal=None if seasonal == "none" else seasonal,
            seasonal_periods=season if seasonal != "none" else None,
        )
        result = model.fit(disp=False)
        past = result.get_prediction(start=0, end=n - 1).summary_frame(alpha=alpha)
        columns = ("mean", "pi_lower", "pi_upper")
        future = (
            result.get_prediction(start=n, end=n + horizon - 1).summary_frame(alpha=alpha) if horizon else None
        )
    else:
        seasonal_order = (o["sp"], o["sd"], o["sq"], season if o["sp"] or o["sd"] or o["sq"] else 0)
        reach = o["p"] + o["d"] + o["q"] + seasonal_order[3] * (o["sp"] + o["sd"] + o["sq"])
        if reach >= n:
            raise ValueError(
                f"options p, d, q, sp, sd and sq reach {reach} periods back and the history has {n}: give smaller orders"
            )
        model = statsmodels.tsa.statespace.sarimax.SARIMAX(
            y.to_numpy(), exog=exog, order=(o["p"], o["d"], o["q"]), seasonal_order=seasonal_order
        )
        result = model.fit(disp=False)
        past = result.get_prediction(start=0, end=n - 1).summary_frame(alpha=alpha)
        columns = ("mean", "mean_ci_lower", "mean_ci_upper")
        future = (
            result.get_forecast(horizon, exog=future_exog).summary_frame(alpha=alpha) if horizon else None
        )
    pick = lambda frame: tuple(frame[c].to_numpy(dtype=float) for c in columns)  # noqa: E731
    empty = (numpy.empty(0),) * 3
    return pick(past), pick(future) if future is not None else empty


def _series(date, value):
    """Dates and values as arrays, the order that sorts them by date, and the position of the
    last known value in that order; a null or infinite date, a date given twice or an infinite
    value is refused."""
    date, value = sse_guest.finite(date, "date"), sse_guest.finite(value, "value")
    if numpy.isnan(date).any():
        raise ValueError(f"row {int(numpy.argmax(numpy.isnan(date))) + 1} has no date")
    order = numpy.argsort(date, kind="stable")
    repeated = numpy.flatnonzero(numpy.diff(date[order]) == 0)
    if len(repeated):
        raise ValueError(f"date {date[order][repeated[0]]:g} is given twice: give one row per period")
    known = numpy.flatnonzero(~numpy.isnan(value[order]))
    if len(known) < 3:
        raise ValueError(f"a forecast needs at least 3 known values, not {len(known)}")
    return date, value, order, int(known[-1])


def _chart(date, value, options, spec, exog=None):
    o = sse_guest.options(options, spec)
    date, value, order, last = _series(date, value)
    history, horizon = order[: last + 1], order[last + 1 :]
    frequency = _frequency(date[history], o)
    future_exog = None
    if exog is not None:
        exog, future_exog = exog[history], exog[horizon] if len(horizon) else None
        if numpy.isnan(exog).any() or (future_exog is not None and numpy.isnan(future_exog).any()):
            raise ValueError("every row needs its features, those of the periods forecast too")
    (fitted, low, high), (ahead, ahead_low, ahead_high) = _fit(
        value[history], len(horizon), o, frequency, exog, future_exog
    )
    answer = numpy.full(len(value), numpy.nan)
    kind = o["return"]
    if kind in ("fitted", "residual"):
        answer[history] = fitted if kind == "fitted" else value[history] - fitted
        return answer
    pick = {"forecast": (fitted, ahead), "lower": (low, ahead_low), "upper": (high, ahead_high)}[kind]
    answer[history], answer[horizon] = pick
    return answer


@tensor(per_call=True)
def Forecast(date: list[float], value: list[float], options: list[str]) -> list[float]:
    """The model's value for each period: fitted over the history, forecast over the null rows
    after it (return=forecast); return=lower or upper for the prediction interval (level=0.95),
    fitted, or residual (actual minus fitted)."""
    return _chart(date, value, options, CHART)


@tensor(per_call=True)
def Forecast_X(date: list[float], value: list[float], features: list[str], options: list[str]) -> list[float]:
    """Forecast with exogenous features, SARIMAX: `A & ';' & B` per row, known for the periods
    forecast too; the options of Forecast but method (arima only)."""
    return _chart(date, value, options, CHART_X, sse_guest.feature_matrix(features, ";"))


@table(
    fields={"Date": float, "Value": float, "Forecast": float, "Lower": float, "Upper": float, "Residual": float}
)
def Forecast_Table(date: list[float], value: list[float], options: list[str]):
    """The series with `periods` future periods appended (periods=12 required), dated by its
    frequency: each period's value, the model's forecast (fitted over the history), the
    prediction interval and the residual."""
    o = sse_guest.options(options, LOAD)
    date, value, order, last = _series(date, value)
    known = order[: last + 1]
    frequency = _frequency(date[known], o)
    # Null rows after the last known value count among the periods asked for.
    given = list(date[order[last + 1 :]])
    dates = list(date[known]) + given
    dates += _next_dates(dates[-1], frequency, max(o["periods"] - len(given), 0))
    (fitted, low, high), (ahead, ahead_low, ahead_high) = _fit(value[known], len(dates) - len(known), o, frequency)
    actual = numpy.concatenate([value[known], numpy.full(len(dates) - len(known), numpy.nan)])
    residual = numpy.concatenate([value[known] - fitted, numpy.full(len(ahead), numpy.nan)])
    columns = [
        numpy.asarray(dates, dtype=float),
        actual,
        numpy.concatenate([fitted, ahead]),
        numpy.concatenate([low, ahead_low]),
        numpy.concatenate([high, ahead_high]),
        residual,
    ]
    return pandas.DataFrame(dict(zip(["Date", "Value", "Forecast", "Lower", "Upper", "Residual"], columns)))

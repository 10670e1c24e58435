"""Clustering, ready-made: k-means (k given, or chosen by silhouette), DBSCAN and HDBSCAN over
any number of features, and geographic clusters of latitude/longitude by great-circle distance.
Served by the data-science engine.

Chart:        Wasm.Cluster(Sum(Sales) & ';' & Sum(Margin), 'method=kmeans, k=4')
              Wasm.Cluster_Geo(Only(Lat), Only(Lon), 'eps_km=2, min_samples=5')
Load script:  LOAD * EXTENSION Wasm.Cluster(Stores{Features, Options});

Each answers one label per input row (0, 1, …; -1 for noise), or with return=probability the
membership strength HDBSCAN gives. A row with a null feature answers null.
"""

import numpy
import sklearn.cluster
import sklearn.metrics
import sklearn.preprocessing
import sse_guest
from sse_guest import Range, tensor

CLUSTER = {
    "method": (("kmeans", "dbscan", "hdbscan"), "kmeans"),
    "k": (Range(int, 1), None),
    "max_k": (Range(int, 2), 10),
    "eps": (Range(float, 0, above=True), 0.5),
    "min_samples": (Range(int, 1), 5),
    "min_cluster_size": (Range(int, 2), 5),
    "scale": (("standard", "minmax", "none"), "standard"),
    "seed": (Range(int, 0, 2**32 - 1), 0),
    "separator": (str, ";"),
    "return": (("label", "probability"), "label"),
}


def _kmeans(x, k, max_k, seed):
    """Labels of k-means with k clusters, or with the k of 2..max_k that has the best silhouette."""
    if k is not None:
        if not 1 <= k <= len(x):
            raise ValueError(f"option k={k}: expected 1 to {len(x)} (the rows with every feature)")
        return sklearn.cluster.KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    if len(x) < 3:
        raise ValueError(f"choosing k needs at least 3 rows with every feature, not {len(x)}")
    best = None
    for k in range(2, min(max_k, len(x) - 1) + 1):
        labels = sklearn.cluster.KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
        # Rows that are all one point make one cluster whatever k is: no silhouette to compare.
        if len(numpy.unique(labels)) < 2:
            continue
        score = sklearn.metrics.silhouette_score(x, labels)
        if best is None or score > best[0]:
            best = (score, labels)
    return numpy.zeros(len(x)) if best is None else best[1]


def _hdbscan(x, o, places, **metric):
    """HDBSCAN with the options' min_cluster_size and min_samples fitted to `x`, which must hold
    at least min_samples (and 2) of the `places`."""
    need = max(2, o["min_samples"])
    if len(x) < need:
        given = f" (min_samples={o['min_samples']})" if o["min_samples"] > 2 else ""
        raise ValueError(f"method=hdbscan needs at least {need} {places}{given}, not {len(x)}")
    return sklearn.cluster.HDBSCAN(
        min_cluster_size=o["min_cluster_size"], min_samples=o["min_samples"], copy=True, **metric
    ).fit(x)


@tensor(per_call=True)
def Cluster(features: list[str], options: list[str]) -> list[float]:
    """Cluster labels of rows of features (`A & ';' & B`): method=kmeans (k, or the best
    silhouette up to max_k), dbscan (eps, min_samples) or hdbscan (min_cluster_size,
    min_samples; return=probability), after scale=standard, minmax or none."""
    o = sse_guest.options(options, CLUSTER)
    if o["return"] == "probability" and o["method"] != "hdbscan":
        raise ValueError("option return=probability: only method=hdbscan gives probabilities")
    matrix = sse_guest.feature_matrix(features, o["separator"])
    complete = ~numpy.isnan(matrix).any(axis=1)
    answer = numpy.full(len(matrix), numpy.nan)
    if not complete.any():
        return answer
    x = matrix[complete]
    if o["scale"] == "standard":
        x = sklearn.preprocessing.StandardScaler().fit_transform(x)
    elif o["scale"] == "minmax":
        x = sklearn.preprocessing.MinMaxScaler().fit_transform(x)
    if o["method"] == "kmeans":
        answer[complete] = _kmeans(x, o["k"], o["max_k"], o["seed"])
    elif o["method"] == "dbscan":
        answer[complete] = sklearn.cluster.DBSCAN(eps=o["eps"], min_samples=o["min_samples"]).fit_predict(x)
    else:
        model = _hdbscan(x, o, "rows with every feature")
        answer[complete] = model.probabilities_ if o["return"] == "probability" else model.labels_
    return answer


GEO = {
    "method": (("dbscan", "hdbscan"), "dbscan"),
    "eps_km": (Range(float, 0, above=True), 1.0),
    "min_samples": (Range(int, 1), 5),
    "min_cluster_size": (Range(int, 2), 5),
}
EARTH_RADIUS_KM = 6371.0088


@tensor(per_call=True)
def Cluster_Geo(latitude: list[float], longitude: list[float], options: list[str]) -> list[float]:
    """Cluster labels of places by great-circle (haversine) distance: method=dbscan (eps_km,
    min_samples) or hdbscan (min_cluster_size, min_samples); -1 for noise."""
    o = sse_guest.options(options, GEO)
    degrees = numpy.column_stack([numpy.asarray(latitude, float), numpy.asarray(longitude, float)])
    with numpy.errstate(invalid="ignore"):
        outside = numpy.abs(degrees) > [90.0, 180.0]
    if outside.any():
        row, column = numpy.argwhere(outside)[0]
        name, bound = (("latitude", 90), ("longitude", 180))[column]
        raise ValueError(f"row {row + 1}: {name} {degrees[row, column]:g} is not from -{bound} to {bound} degrees")
    points = numpy.radians(degrees)
    complete = ~numpy.isnan(points).any(axis=1)
    answer = numpy.full(len(points), numpy.nan)
    if not complete.any():
        return answer
    if o["method"] == "dbscan":
        model = sklearn.cluster.DBSCAN(
            eps=o["eps_km"] / EARTH_RADIUS_KM, min_samples=o["min_samples"], metric="haversine", algorithm="ball_tree"
        ).fit(points[complete])
    else:
        model = _hdbscan(points[complete], o, "places with a latitude and longitude", metric="haversine")
    answer[complete] = model.labels_
    return answer

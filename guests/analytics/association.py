"""Association rules, ready-made: apriori over baskets, with support, confidence and lift. Served
by the data-science engine.

Load script:  Rules: LOAD * EXTENSION Wasm.Association_Rules(OrderLines{OrderID, Product, 'min_support=0.02'});

One row per item of a basket (its transaction key, the item); an item twice in a basket counts
once. Each rule says: baskets with every item of the antecedent also hold the consequent's.
Support is the share of baskets holding both, confidence the share of the antecedent's baskets
that hold the consequent, lift the confidence over the consequent's own share. Items within an
antecedent or consequent are sorted and joined by `, `; rules come by lift, then confidence.
"""

import itertools

import numpy
import pandas
import sse_guest
from sse_guest import Texts, table

RULES = {
    "min_support": (float, 0.01),
    "min_confidence": (float, 0.5),
    "min_lift": (float, 0.0),
    "max_length": (int, 3),
    "max_rules": (int, 10000),
}


def _frequent(baskets, min_support, max_length):
    """{itemset (a tuple of column indices, sorted): support} of every itemset of at most
    `max_length` items held by at least `min_support` of the baskets (apriori, level by level)."""
    count = len(baskets)
    support = baskets.mean(axis=0)
    level = {(i,): float(s) for i, s in enumerate(support) if s >= min_support}
    found = dict(level)
    size = 1
    while level and size < max_length:
        size += 1
        previous = sorted(level)
        candidates = set()
        for a, b in itertools.combinations(previous, 2):
            if a[:-1] == b[:-1]:
                union = a + (b[-1],) if a[-1] < b[-1] else b + (a[-1],)
                # Every subset of a frequent itemset is frequent.
                if all(sub in level for sub in itertools.combinations(union, size - 1)):
                    candidates.add(union)
        level = {}
        for itemset in sorted(candidates):
            share = numpy.count_nonzero(baskets[:, list(itemset)].all(axis=1)) / count
            if share >= min_support:
                level[itemset] = share
        found.update(level)
    return found


@table(
    fields={"Antecedent": str, "Consequent": str, "Support": float, "Confidence": float, "Lift": float}
)
def Association_Rules(transaction: Texts, item: Texts, options: Texts):
    """Apriori rules from (transaction, item) rows: min_support=0.01 (a share of the baskets),
    min_confidence=0.5, min_lift=0, max_length=3 (items in a rule), max_rules=10000."""
    o = sse_guest.options(options, RULES)
    if not 0.0 < o["min_support"] <= 1.0:
        raise ValueError(f"option min_support={o['min_support']}: expected a share above 0, at most 1")
    if o["max_length"] < 2:
        raise ValueError(f"option max_length={o['max_length']}: a rule has at least 2 items")
    pairs = pandas.DataFrame({"t": transaction, "i": item})
    pairs = pairs[(pairs["t"] != "") & (pairs["i"] != "")].drop_duplicates()
    if pairs.empty:
        return pandas.DataFrame({f: [] for f in ("Antecedent", "Consequent", "Support", "Confidence", "Lift")})
    items = sorted(pairs["i"].unique())
    basket_of = pandas.factorize(pairs["t"])[0]
    item_of = numpy.searchsorted(numpy.array(items, dtype=object), pairs["i"].to_numpy())
    baskets = numpy.zeros((basket_of.max() + 1, len(items)), dtype=bool)
    baskets[basket_of, item_of] = True
    frequent = _frequent(baskets, o["min_support"], o["max_length"])
    rules = []
    for itemset, support in frequent.items():
        for size in range(1, len(itemset)):
            for antecedent in itertools.combinations(itemset, size):
                consequent = tuple(i for i in itemset if i not in antecedent)
                confidence = support / frequent[antecedent]
                lift = confidence / frequent[consequent]
                if confidence >= o["min_confidence"] and lift >= o["min_lift"]:
                    rules.append((antecedent, consequent, support, confidence, lift))
    rules.sort(key=lambda r: (-r[4], -r[3], r[0], r[1]))
    name = lambda itemset: ", ".join(items[i] for i in itemset)  # noqa: E731
    return [(name(a), name(c), s, conf, lift) for a, c, s, conf, lift in rules[: max(o["max_rules"], 0)]]

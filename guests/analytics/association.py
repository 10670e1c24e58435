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
from sse_guest import Range, Texts, table

RULES = {
    "min_support": (Range(float, 0, 1, above=True), 0.01),
    "min_confidence": (Range(float, 0, 1), 0.5),
    "min_lift": (Range(float, 0), 0.0),
    # A rule has at least two items.
    "max_length": (Range(int, 2), 3),
    "max_rules": (Range(int, 1), 10000),
}
# Multiplying a word of eight 0/1 bytes by this puts the first byte's bit at bit 63, the second's
# at bit 62, ...: its top byte holds the eight bits (no carries: each product bit has one source).
_GATHER = numpy.uint64(0x8040201008040201)
_TOP = numpy.uint64(56)


def _frequent(bits, count, min_support, max_length):
    """{itemset (a tuple of item numbers, sorted): support} of every itemset of at most
    `max_length` items held by at least `min_support` of the `count` baskets (apriori, level by
    level). `bits` holds each item's baskets as a row of bits, in 64-bit words: an itemset's
    baskets are the AND of its items' rows."""
    support = numpy.bitwise_count(bits).sum(axis=1, dtype=numpy.int64) / count
    # Candidates are counted a block at a time, into buffers made once: the ANDed rows of a block
    # stay within 1 MiB, so they are written in the cache and reused, not fresh memory each time.
    block = max(1, (1 << 20) // max(8 * bits.shape[1], 1))
    rows, other = (numpy.empty((block, bits.shape[1]), dtype=numpy.uint64) for _ in range(2))
    ones = numpy.empty((block, bits.shape[1]), dtype=numpy.uint8)
    # This level's frequent itemsets, a row each, in sorted order.
    level = numpy.flatnonzero(support >= min_support)[:, None]
    found = {(i,): float(support[i]) for i in level[:, 0].tolist()}
    size = 1
    while len(level) > 1 and size < max_length:
        size += 1
        candidates = _candidates(level)
        shares = numpy.empty(len(candidates))
        for start in range(0, len(candidates), block):
            part = candidates[start : start + block]
            anded, scratch, counted = rows[: len(part)], other[: len(part)], ones[: len(part)]
            numpy.take(bits, part[:, 0], axis=0, out=anded)
            for j in range(1, size):
                numpy.take(bits, part[:, j], axis=0, out=scratch)
                anded &= scratch
            shares[start : start + len(part)] = numpy.bitwise_count(anded, out=counted).sum(axis=1, dtype=numpy.int64)
        shares /= count
        frequent = shares >= min_support
        level = candidates[frequent]
        found.update(zip(map(tuple, level.tolist()), shares[frequent].tolist()))
    return found


def _candidates(level):
    """The next level's candidates from this level's frequent itemsets (rows of item numbers,
    sorted): every two that differ in their last item only, joined, in sorted order. A candidate
    with an infrequent subset is counted too (and found infrequent, as its subset is): cheaper
    than looking each subset up."""
    # Rows with the same prefix (all but the last item) come together; each row pairs with
    # every later row of its run.
    starts = numpy.flatnonzero(numpy.r_[True, (level[1:, :-1] != level[:-1, :-1]).any(axis=1)])
    ends = numpy.repeat(numpy.r_[starts[1:], len(level)], numpy.diff(numpy.r_[starts, len(level)]))
    partners = ends - numpy.arange(len(level)) - 1
    first = numpy.repeat(numpy.arange(len(level)), partners)
    # The partners of row i are rows i+1, i+2, ...: their offsets count up within each repeat.
    offset = numpy.arange(len(first)) - numpy.repeat(numpy.cumsum(partners) - partners, partners)
    second = first + 1 + offset
    return numpy.column_stack((level[first], level[second, -1]))


def _no_rules():
    """The answer when no row holds both a transaction and an item: no rules, the fields named."""
    return pandas.DataFrame({f: [] for f in ("Antecedent", "Consequent", "Support", "Confidence", "Lift")})


@table(
    fields={"Antecedent": str, "Consequent": str, "Support": float, "Confidence": float, "Lift": float}
)
def Association_Rules(transaction: Texts, item: Texts, options: Texts):
    """Apriori rules from (transaction, item) rows: min_support=0.01 (a share of the baskets),
    min_confidence=0.5, min_lift=0, max_length=3 (items in a rule), max_rules=10000."""
    o = sse_guest.options(options, RULES)
    # Each column's distinct values and a code per row (a dimension's come from the host as such);
    # a row with an empty transaction or item is left out.
    basket_code, basket_names = sse_guest.factorize(transaction)
    item_code, item_names = sse_guest.factorize(item)
    if not len(basket_code):
        return _no_rules()
    empty_basket, empty_item = basket_names == "", item_names == ""
    if empty_basket.any() or empty_item.any():
        keep = ~(empty_basket[basket_code] | empty_item[item_code])
        if not keep.any():
            return _no_rules()
        basket_code, item_code = basket_code[keep], item_code[keep]
        # A basket per transaction with a row kept, numbered anew.
        has = numpy.zeros(len(basket_names), dtype=bool)
        has[basket_code] = True
        basket_of = (numpy.cumsum(has) - 1)[basket_code]
        count = int(has.sum())
        used = numpy.zeros(len(item_names), dtype=bool)
        used[item_code] = True
        present = numpy.flatnonzero(used)
    else:
        # Every row kept: each code is some row's, so every basket and item is there already.
        basket_of, count = basket_code, len(basket_names)
        present = numpy.arange(len(item_names))
    # Items numbered in sorted order; an item twice in a basket marks it once.
    items = sorted(item_names[present].tolist())
    number = {name: k for k, name in enumerate(items)}
    column_of = numpy.zeros(len(item_names), dtype=numpy.intp)
    column_of[present] = [number[name] for name in item_names[present].tolist()]
    # Each item's baskets as a row of bits (whole 64-bit words), set straight from the rows.
    width = -(-count // 64) * 64
    marks = numpy.zeros(len(items) * width, dtype=numpy.uint8)
    marks[column_of[item_code] * width + basket_of] = 1
    # Eight 0/1 bytes into a byte of bits (the first the highest, as numpy.packbits packs them):
    # one multiplication a word, where packbits goes byte by byte in the engine (2 ms here).
    packed = ((marks.view(numpy.uint64) * _GATHER) >> _TOP).astype(numpy.uint8)
    bits = packed.view(numpy.uint64).reshape(len(items), width // 64)
    frequent = _frequent(bits, count, o["min_support"], o["max_length"])
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

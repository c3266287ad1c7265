"""Candidate layer pairs (m, n): source feature map m -> target feature map n (paper, Section 3, Fig. 3 a-c)."""

NAMES = ("single", "one-to-one", "all-to-all")  # the ready-made pair sets of every (source, target) below

# (source, target) -> configuration name -> pairs. Source indices count the source's candidate maps
# (ResNet32: 15 block outputs, stage ends 4, 9, 14); target indices count the target's (VGG9: 5 pre-pool maps).
CONFIGS = {
    ("resnet32", "vgg9"): {
        "single": [(14, 2)],  # last source map -> the target map of the same size (8x8)
        "one-to-one": [(4, 0), (9, 1), (14, 2)],  # each source stage end -> the target map of the same size
        "all-to-all": [(m, n) for m in (4, 9, 14) for n in range(5)],  # 15 pairs, as in the paper's code
    },
    ("resnet34", "resnet18"): {
        "single": [(4, 4)],
        "one-to-one": [(1, 1), (2, 2), (3, 3), (4, 4)],
        "all-to-all": [(m, n) for m in (4, 3, 2, 1) for n in (4, 3, 2, 1)],  # 16 pairs, the paper's default
    },
}
# the other CIFAR ResNets end their stages at n-1, 2n-1, 3n-1 (n = (depth-2)/6)
for _depth in (20, 44, 56):
    _n = (_depth - 2) // 6
    _ends = (_n - 1, 2 * _n - 1, 3 * _n - 1)
    CONFIGS[(f"resnet{_depth}", "vgg9")] = {
        "single": [(_ends[2], 2)],
        "one-to-one": list(zip(_ends, (0, 1, 2))),
        "all-to-all": [(m, n) for m in _ends for n in range(5)],
    }


def parse_pairs(spec, source=None, target=None, num_source=None, num_target=None):
    """Pairs from a name (``single``, ``one-to-one``, ``all-to-all``), a ``"4-0,9-1"`` string or a list.

    With ``num_source``/``num_target`` (numbers of candidate maps) every index is range-checked.
    """
    if isinstance(spec, str) and spec in NAMES:
        if (source, target) not in CONFIGS:
            raise ValueError(
                f"no ready-made {spec!r} pairs for source {source!r} -> target {target!r}; "
                f"known: {sorted(CONFIGS)}; give pairs explicitly as 'm-n,m-n'"
            )
        pairs = list(CONFIGS[(source, target)][spec])
    elif isinstance(spec, str):
        try:
            pairs = [tuple(int(i) for i in p.split("-")) for p in spec.replace(" ", "").split(",") if p]
        except ValueError:
            raise ValueError(f"pairs {spec!r} are not of the form 'm-n,m-n' (e.g. '4-0,9-1,14-2')") from None
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"pairs {spec!r} are not of the form 'm-n,m-n' (e.g. '4-0,9-1,14-2')")
    else:
        pairs = [tuple(int(i) for i in p) for p in spec]
    pairs = [tuple(p) for p in pairs]
    if not pairs:
        raise ValueError("at least one pair (m, n) is needed")
    duplicated = sorted({f"{m}-{n}" for m, n in pairs if pairs.count((m, n)) > 1})
    if duplicated:
        raise ValueError(f"pairs {', '.join(duplicated)} are given more than once; each pair (m, n) is matched once")
    for m, n in pairs:
        if num_source is not None and not 0 <= m < num_source:
            raise ValueError(
                f"source index {m} in pair {m}-{n} is out of range: the source has "
                f"{num_source} candidate feature maps (0..{num_source - 1})"
            )
        if num_target is not None and not 0 <= n < num_target:
            raise ValueError(
                f"target index {n} in pair {m}-{n} is out of range: the target has "
                f"{num_target} candidate feature maps (0..{num_target - 1})"
            )
    return [tuple(p) for p in pairs]

"""The paper's methods (Table 1) as configurations of one trainer.

Each entry says which pairs to match (a ready-made name from ``l2t.pairs``) and which losses to add:
``fm`` weighted feature matching (Eq. 3), ``what``/``where`` learned by the meta-networks (Algorithm 1),
``at`` attention transfer, ``lwf`` learning without forgetting.
"""

METHODS = {
    "scratch": dict(),
    "lwf": dict(lwf=True),
    "at": dict(pairs="one-to-one", at=True),
    "lwf+at": dict(pairs="one-to-one", at=True, lwf=True),
    "fm-single": dict(pairs="single", fm=True),
    "fm-one-to-one": dict(pairs="one-to-one", fm=True),
    "fm-all-to-all": dict(pairs="all-to-all", fm=True),  # ablation: L2T-ww's 15 pairs, w and lambda fixed
    "l2t-w-single": dict(pairs="single", fm=True, what=True),
    "l2t-w-one-to-one": dict(pairs="one-to-one", fm=True, what=True),
    "l2t-ww": dict(pairs="all-to-all", fm=True, what=True, where=True),
}


def method(name):
    """The configuration of a method by its paper name."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    m = {**dict(fm=False, what=False, where=False, at=False, lwf=False, pairs=None), **METHODS[name]}
    return {**m, "source": m["fm"] or m["at"] or m["lwf"]}  # source: whether it reads a source network

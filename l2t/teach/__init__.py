"""The book's helpers, apart from the method: graders, the toy problem, small data, partial results, scales.

The method itself lives one level up (``l2t.matching``, ``l2t.meta``, ``l2t.lookahead``, ``l2t.train``).
"""

"""Measuring: quality metrics (:mod:`~fomcodec.eval.metrics`, AKD landmarks in
:mod:`~fomcodec.eval.landmarks`), the AV1/H.264 baselines (:mod:`~fomcodec.eval.baselines`),
``fomc compare`` (:mod:`~fomcodec.eval.compare`) and ``fomc preview``. May import ``media``,
``codec``, ``zoo`` and the helpers; nothing below imports it.
"""

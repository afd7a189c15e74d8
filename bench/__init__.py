"""Performance benchmark: the xai gallery against pytorch-grad-cam and the one-pass floor.

Run ``python -m bench.run`` (``--help`` for options); results go to ``bench/results/``.
"""

"""recsearch: recommender AutoML from a click log to a served two-tower model.

The package root imports nothing heavy, so that light consumers (the serving
process, the command-line help) start fast. Stage functions live in their
subpackages: ``recsearch.ingest``, ``recsearch.data`` and the ones that follow.
"""

__version__ = "0.1.0"

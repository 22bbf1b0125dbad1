"""The pipeline: one document through load → parse → chunk → embed → write (embed.py), work
messages and hand-overs (work.py), the bucket's reconciliation (reconcile.py).

Nothing here knows about triggers; handlers/ turns events into these calls. Import the modules
themselves: this package imports nothing, so that a cold start loads only what its event needs.
"""

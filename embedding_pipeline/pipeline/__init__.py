"""The pipeline: one document through load → parse → chunk → embed → write (objects.py and inline.py
choose the source and the job, embed.py runs it), deleted sources (remove.py), parked queue messages
(parked_messages.py), and the bucket's reconciliation (the reconcile package).

Nothing here knows about triggers; handlers/ turns events into these calls. Import the modules
themselves: this package imports nothing, so that a cold start loads only what its event needs.
"""

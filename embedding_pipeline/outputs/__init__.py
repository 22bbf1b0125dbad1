"""The output contract: which objects the pipeline writes, in which order, and who reads them.

layout.py       the keys: built and parsed here, nowhere else
models.py       what the JSON outputs hold (manifest, error records) and the settings fingerprint
lines.py        the JSON lines of records and checkpoints
records.py      the records object, streamed in document order
checkpoints.py  vectors of an unfinished run
store.py        reads and writes them all in Object Storage (DocumentOutputs, BucketOutputs)
"""

"""Test doubles shared by the tests and the benchmarks: loopback emulators of Yandex's APIs (embeddings:
yandex_emulator.py; Vision OCR: ocr_emulator.py), generators of crafted documents (adversarial.py) and
scanned ones whose text the OCR emulator knows (scans.py, ocr_truth.py).

Neither the function's archive nor the local stack ships or imports this package.
"""

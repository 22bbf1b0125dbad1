"""Test doubles shared by the tests and the benchmarks: a loopback emulator of Yandex's APIs
(yandex_emulator.py) and generators of crafted documents (adversarial.py).

Neither the function's archive nor the local stack ships or imports this package.
"""

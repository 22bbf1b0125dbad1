"""Serverless embedding pipeline for Yandex Cloud: documents in Object Storage become vectors beside them."""

__version__ = "0.1.0"

"""Clients of the services the pipeline talks to, over httpx: Object Storage, the embeddings API,
Message Queue, and the IAM token sources; with what they share (request signing, backoff, pacing).

Each takes an injectable httpx client (tests fake one service and keep the others real), and maps
httpx's exceptions to the product's own (`embedding_pipeline.errors`) before they leave its module.
"""

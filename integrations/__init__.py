"""Clients of the deployed HTTP API for retrieval frameworks: optional, never imported by the function
(the Terraform archive's include list leaves this package out).

search_api.py          POST /v1/search over httpx: the request, the hits, the errors
langchain_retriever.py LangChain's BaseRetriever: hits as Documents (needs langchain-core)
llamaindex_retriever.py LlamaIndex's BaseRetriever: hits as NodeWithScore (needs llama-index-core)

The libraries come from requirements-clients.txt; the function's own requirements hold neither.
"""

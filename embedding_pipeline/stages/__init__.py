"""The pipeline's stages, pure of storage and triggers: documents (bytes → text → chunks) and
vectorize (chunks → vectors, each distinct text paid for once)."""

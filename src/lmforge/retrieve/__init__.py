"""Sentence embeddings (and, in later issues, knowledge bases and grounded chat)."""

from lmforge.retrieve.embed import SentenceEmbedder, cosine_similarity

__all__ = ["SentenceEmbedder", "cosine_similarity"]

"""Sentence embeddings, knowledge bases (faiss + BM25) and their evaluation.

Example:
    from lmforge.retrieve import KnowledgeBase

    kb = KnowledgeBase.create("support")          # $LMFORGE_HOME/kb/support
    kb.add([Path("docs/")])                       # read, chunk, embed, index, save
    hits = kb.search("how long do returns take?", k=3, hybrid=True)
"""

from lmforge.hub.embed import SentenceEmbedder, cosine_similarity
from lmforge.retrieve.evaluate import RetrievalReport, evaluate_retrieval, read_queries
from lmforge.retrieve.kb import AddReport, Hit, KnowledgeBase, kb_root, list_kbs

__all__ = [
    "AddReport",
    "Hit",
    "KnowledgeBase",
    "RetrievalReport",
    "SentenceEmbedder",
    "cosine_similarity",
    "evaluate_retrieval",
    "kb_root",
    "list_kbs",
    "read_queries",
]

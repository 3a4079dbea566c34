"""The OpenAI-compatible API, one module per endpoint family over the shared handler
(``base.py``). A family serves once it is listed in ``FAMILIES``."""

from lmforge.serve.api.agent import AgentTurns
from lmforge.serve.api.base import EndpointFamily
from lmforge.serve.api.chat import Chat
from lmforge.serve.api.classify import Classification
from lmforge.serve.api.completions import Completions
from lmforge.serve.api.embeddings import Embeddings
from lmforge.serve.api.image_generation import ImageGeneration
from lmforge.serve.api.images import ImageSearch
from lmforge.serve.api.kb import KnowledgeBaseSearch
from lmforge.serve.api.models import Models
from lmforge.serve.api.moderations import Moderations
from lmforge.serve.api.responses import Responses
from lmforge.serve.api.score import Scoring
from lmforge.serve.api.sessions import Sessions

# The server's endpoint families, in the order their routes are added (and listed in
# /openapi.json).
FAMILIES: tuple[type[EndpointFamily], ...] = (
    Models,
    Chat,
    Responses,
    Completions,
    Embeddings,
    Moderations,
    Classification,
    KnowledgeBaseSearch,
    ImageSearch,
    ImageGeneration,
    Scoring,
    Sessions,
    AgentTurns,
)

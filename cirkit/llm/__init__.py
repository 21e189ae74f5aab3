"""The model side of a rollout: what is asked of a completions server and the client that asks.

Token-in/token-out: prompts go out as token ids and the generated ids come back as the server
made them; with a recorder, every completion is kept in (and replayed from) the store.
"""

from ._client import (
    BACKEND_NAME,
    LLMError,
    ModelNotFoundError,
    OpenAICompletionClient,
    ServerUnreachableError,
    completion_args,
    derive_seed,
    prompt_sha256,
)
from ._server import (
    CPU_ARGS,
    CPU_ENV,
    VllmServer,
    VllmServerError,
    card_rope_scaling,
    free_port,
    rope_overrides,
)
from ._types import Completion, CompletionClient, Sampling

__all__ = [
    "BACKEND_NAME",
    "CPU_ARGS",
    "CPU_ENV",
    "Completion",
    "CompletionClient",
    "LLMError",
    "ModelNotFoundError",
    "OpenAICompletionClient",
    "Sampling",
    "ServerUnreachableError",
    "VllmServer",
    "VllmServerError",
    "card_rope_scaling",
    "completion_args",
    "derive_seed",
    "free_port",
    "prompt_sha256",
    "rope_overrides",
]

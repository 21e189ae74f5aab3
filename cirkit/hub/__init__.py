"""Publishing: a built dataset folder to the Hugging Face Hub in one commit, and back.

``huggingface_hub`` is imported inside the functions, so ``import cirkit`` stays fast.
"""

from ._card import STORE_PATH, HubError, parse_card, with_store_section
from ._pull import PullResult, pull
from ._push import PushResult, UploadFile, push_folder

__all__ = ["STORE_PATH", "HubError", "PullResult", "PushResult", "UploadFile", "parse_card",
           "pull", "push_folder", "with_store_section"]

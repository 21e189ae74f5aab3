"""Hub failures as one line plus a hint: the token, the HTTP status and the repo, never a trace."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from ._card import HubError

__all__ = ["check_repo_id", "hub_errors", "require_token"]

_LOGIN = "export HF_TOKEN=hf_... (a write token), or run `hf auth login` (`huggingface-cli login`)"


def require_token(token: str | None) -> str:
    """``token``, else the one huggingface_hub finds (HF_TOKEN, then the login file)."""
    from huggingface_hub import get_token

    found = token or get_token()
    if not found:
        raise HubError("no Hugging Face token: HF_TOKEN is not set and no `huggingface-cli "
                       "login` / `hf auth login` token was found", hint=_LOGIN)
    return found


_NAME = r"[A-Za-z0-9](?:[\w.-]*[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"(?:{_NAME}/)?{_NAME}", re.ASCII)


def check_repo_id(repo_id: str) -> None:
    """Refuse a malformed id before any work (a dry run checks it too); the Hub's rules."""
    if (not _REPO_ID.fullmatch(repo_id) or len(repo_id) > 96 or "--" in repo_id
            or ".." in repo_id):
        raise HubError(f"{repo_id!r} is not a valid repo id",
                       hint="use NAMESPACE/NAME (at most 96 characters): letters, digits, '-', "
                            "'_' and '.', not starting or ending with '-' or '.', no '--' or '..'")


@contextmanager
def hub_errors(repo_id: str, revision: str | None = None) -> Iterator[None]:
    """Turn huggingface_hub's HTTP and transport errors into HubError."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    rev = revision or "main"
    try:
        yield
    except RevisionNotFoundError:
        raise HubError(f"dataset {repo_id} has no revision {rev!r} (404)",
                       hint="check the branch name; `cirkit push --revision` creates it") from None
    except RepositoryNotFoundError:
        raise HubError(f"dataset {repo_id} not found (or private and this token cannot see it)",
                       hint="check the repo id, or use a token with read access: "
                            f"{_LOGIN}") from None
    except HfHubHTTPError as e:
        code = e.response.status_code
        why = (e.server_message or str(e).splitlines()[0]).strip().replace("\n", " ")
        if code == 401:
            raise HubError(f"the Hub refused the token (401): {why}", hint=_LOGIN) from None
        if code == 403:
            raise HubError(f"this token may not write to {repo_id} (403): {why}",
                           hint="use a write token for that namespace (or fine-grained with "
                                "write access to the repo)") from None
        if code in (409, 412):
            raise HubError(f"conflict on {repo_id}@{rev} ({code}): {why}",
                           hint="someone pushed meanwhile, or the name is taken; retry") from None
        raise HubError(f"the Hub answered {code} for {repo_id}: {why}",
                       hint="retry later; if it persists, check the repo on the Hub") from None
    except httpx2.TransportError as e:
        raise HubError(f"cannot reach the Hub at {constants.ENDPOINT}: {e}",
                       hint="check the network, or HF_ENDPOINT if you use a mirror") from None
    except LocalEntryNotFoundError as e:  # snapshot_download: Hub unreachable, nothing cached
        cause = e.__cause__ or e
        raise HubError(f"could not download {repo_id} from {constants.ENDPOINT}: "
                       f"{str(cause).splitlines()[0]}",
                       hint="check the network, or HF_ENDPOINT if you use a mirror") from None
    except ValueError as e:  # create_commit's README check: "Invalid metadata in README.md"
        if "README" not in str(e):
            raise
        raise HubError(str(e).replace("\n", " "), hint="fix the card's front matter") from None

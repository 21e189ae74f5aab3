"""The dataset card (README.md) and folder checks done before anything is uploaded.

A push that the Hub accepts but ``datasets.load_dataset`` cannot read is worse than one that
fails: so the folder must hold data files, the card must have YAML front matter, and every
``configs[].data_files`` pattern must match a file of the folder. The card is edited as text
(never re-dumped) so the builder's front matter keeps its bytes apart from the store block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cirkit.errors import HubError

__all__ = [
    "DATA_SUFFIXES",
    "SKIP_DIRS",
    "STORE_KEY",
    "STORE_PATH",
    "Card",
    "HubError",
    "check_folder",
    "folder_files",
    "parse_card",
    "with_store_section",
]

STORE_PATH = "store/store.cirpack"
STORE_KEY = "cirkit_store"
DATA_SUFFIXES = (".parquet", ".arrow", ".jsonl", ".csv")
SKIP_DIRS = frozenset({".git", ".cache", "__pycache__"})  # local clutter, never dataset content
_FRONT = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)^---[ \t]*(?:\r?\n|\Z)", re.S | re.M)
_BEGIN, _END = "<!-- cirkit:store -->", "<!-- /cirkit:store -->"


@dataclass(frozen=True, slots=True)
class Card:
    text: str
    meta: dict[str, Any]
    front_end: int  # offset in ``text`` of the closing ``---`` line

    def store(self) -> dict[str, Any] | None:
        """The ``cirkit_store`` block a ``push --with-store`` wrote, if any."""
        block = self.meta.get(STORE_KEY)
        return block if isinstance(block, dict) else None


def parse_card(text: str, where: str = "README.md") -> Card:
    import yaml  # pyyaml comes with huggingface_hub; imported here to keep `import cirkit` fast

    m = _FRONT.match(text)
    if m is None:
        raise HubError(f"{where} has no YAML front matter (a block between '---' lines at the top)",
                       hint="write the card with `cirkit build`, or add `configs` and `license`"
                            " front matter as datasets.push_to_hub does")
    try:
        meta = yaml.safe_load(m.group(1))
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise HubError(f"{where}: front matter is not valid YAML ({first})",
                       hint="fix the YAML between the '---' lines") from None
    if not isinstance(meta, dict) or not meta:
        raise HubError(f"{where}: front matter is empty or not a mapping",
                       hint="it needs at least `configs` (splits and their data_files)")
    return Card(text, meta, m.end(1))


def folder_files(folder: Path) -> list[str]:
    """Every file under ``folder`` as a sorted POSIX path, local clutter left out."""
    out = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if p.is_file() and not SKIP_DIRS.intersection(rel.parts[:-1]):
            out.append(rel.as_posix())
    return sorted(out)


def _glob(pattern: str) -> re.Pattern[str]:
    """fsspec-style glob as datasets resolves data_files: ``*`` stays inside one folder."""
    out = []
    for part in re.split(r"(\*\*|\*|\?)", pattern.strip("/")):
        out.append({"**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part)))
    return re.compile("".join(out))


def _patterns(data_files: Any) -> list[str]:
    if isinstance(data_files, str):
        return [data_files]
    if isinstance(data_files, dict):
        return [p for v in data_files.values() for p in _patterns(v)]
    if isinstance(data_files, list):
        out = []
        for item in data_files:
            out += _patterns(item["path"] if isinstance(item, dict) and "path" in item else item)
        return out
    return []


def check_folder(folder: Path) -> tuple[Card, list[str]]:
    """The card and files of a dataset folder; HubError names the first thing missing."""
    if not folder.is_dir():
        raise HubError(f"{folder} is not a directory", hint="pass the folder `cirkit build` wrote")
    files = folder_files(folder)
    if not any(PurePosixPath(f).name.endswith(DATA_SUFFIXES) for f in files):
        raise HubError(f"{folder} has no data files ({', '.join(DATA_SUFFIXES)})",
                       hint="build the dataset first: `cirkit build sft|rl ... --out FOLDER`")
    if "README.md" not in files:
        raise HubError(f"{folder} has no README.md (the dataset card)",
                       hint="`cirkit build` writes one; the Hub and datasets read splits from it")
    card = parse_card((folder / "README.md").read_text(encoding="utf-8"))
    configs = card.meta.get("configs")
    if configs is not None:
        if not isinstance(configs, list) or not configs:
            raise HubError("README.md: `configs` must be a non-empty list",
                           hint="e.g. configs: [{config_name: default, data_files: "
                                "[{split: train, path: data/train-*}]}]")
        for cfg in configs:
            name = cfg.get("config_name", "?") if isinstance(cfg, dict) else "?"
            pats = _patterns(cfg.get("data_files")) if isinstance(cfg, dict) else []
            if not pats:
                raise HubError(f"README.md: config {name!r} has no data_files",
                               hint="list each split with its path pattern, e.g. data/train-*")
            for pat in pats:
                if not any(_glob(pat).fullmatch(f) for f in files):
                    raise HubError(f"README.md: config {name!r} data_files {pat!r} matches no "
                                   f"file in {folder}",
                                   hint="fix the pattern or rebuild; load_dataset would fail")
    return card, files


def _drop_block(front: str) -> str:
    """The front matter without a previous top-level ``cirkit_store:`` block."""
    out: list[str] = []
    skipping = False
    for line in front.splitlines(keepends=True):
        if line.startswith(f"{STORE_KEY}:"):
            skipping = True
            continue
        if skipping and (line[:1] in (" ", "\t") or not line.strip()):
            continue
        skipping = False
        out.append(line)
    return "".join(out)


def with_store_section(card: Card, *, repo_id: str, manifest_sha256: str, entries: int,
                       blobs: int, size: int) -> str:
    """The card text naming the shipped store pack, in front matter and body (idempotent)."""
    head = card.text[:card.front_end]
    start = card.text.index("\n") + 1
    front = _drop_block(head[start:])
    if front and not front.endswith("\n"):
        front += "\n"
    front += (f"{STORE_KEY}:\n  path: {STORE_PATH}\n  format: cirkit-pack\n"
              f"  manifest_sha256: \"{manifest_sha256}\"\n  entries: {entries}\n  blobs: {blobs}\n"
              f"  bytes: {size}\n")
    body = card.text[card.front_end:]
    body = re.sub(re.escape(_BEGIN) + r".*?" + re.escape(_END), "", body, flags=re.S)
    body = body.rstrip() + "\n"
    section = (
        f"{_BEGIN}\n## Replay store\n\n"
        f"`{STORE_PATH}` holds every tool response and model completion that this dataset's "
        f"build took from outside ({entries} entries, {blobs} blobs, {size:,} bytes; manifest "
        f"sha256 `{manifest_sha256}`). Fetch it into a local store, verified, and rebuild with "
        f"no network:\n\n```bash\ncirkit pull {repo_id} DEST --store STORE_DIR\n```\n{_END}\n")
    return card.text[:start] + front + body + ("\n" if body.strip("-\n \t") else "") + section

"""Tokenizing for the builders: batch calls into the fast tokenizer, pieces with masks, and the
vectorised join of prompt and response ids into ``input_ids``/``labels``.

Text-only traces are tokenized piece by piece (generated text, observation, generated text…),
each piece encoded alone, exactly as a rollout appends an observation: the mask then falls on
piece borders by construction, never on a guess about where a token boundary lies.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cirkit.cir import END_CODE, START_CODE, THINK_CLOSE, THINK_OPEN, Segment, parse
from cirkit.tokenizer import ModelTokenizer

__all__ = ["IGNORE_INDEX", "BuildTokenizer", "Joined", "join_ids", "split_pieces"]

#: The label that PyTorch's cross-entropy (and TRL's collator) ignores.
IGNORE_INDEX = -100
_SENTINEL = "\x00cirkit-turn-end-probe\x00"
#: Added tokens a CIR trace writes on purpose: never control tokens, whatever their flags.
_CIR_MARKERS = frozenset({THINK_OPEN, THINK_CLOSE, START_CODE, END_CODE})
#: What a template's turn marker looks like when the vocabulary has no token for it
#: (``<|im_start|>``, ``<start_of_turn>``, ``[INST]``); a plain-text one such as Alpaca's
#: ``###`` is ordinary markdown and is not taken.
_TAG = re.compile(r"<[^<>\s]{2,}>|\[/?[A-Z_]{2,}\]")


class BuildTokenizer(ModelTokenizer):
    """The model's tokenizer (:class:`cirkit.tokenizer.ModelTokenizer`) with what builders
    add: the chat template's end of turn, and chat prompts encoded with their common pieces
    cached."""

    __slots__ = ("_added", "_checked", "_control", "_segments", "_split", "control_ids",
                 "control_strings", "stop_ids", "turn_end")

    def __init__(self, name_or_path: str | Path) -> None:
        super().__init__(name_or_path)
        self.turn_end = self._turn_end()
        self._split, self._added = self._prompt_splitter()
        self._segments: OrderedDict[str, list[int]] = OrderedDict()
        self._checked = 0
        self.control_strings, self.control_ids = self._control_tokens()
        self._control = re.compile("|".join(re.escape(c) for c in self.control_strings)) \
            if self.control_strings else None
        stops = [self.turn_end, self.eos_token or ""]
        #: Control ids a generation may end with (it stopped there), and only there.
        self.stop_ids = frozenset(i for t in stops if t for i in self.encode(t)
                                  if i in self.control_ids)

    def _control_tokens(self) -> tuple[tuple[str, ...], frozenset[int]]:
        """What must never appear in a trace's or a question's text, longest first: every
        added token but the CIR markers (Qwen's ``<|im_start|>``, ``<|im_end|>``,
        ``<|endoftext|>``...), and the chat template's own turn markers (its end of turn, and
        what every role's header starts with), even where the tokenizer has no token for
        them, when they look like a tag). Text holding one would become a turn of its own
        once templated or tokenized."""
        added = {t.content: i for i, t in self.backend.get_added_tokens_decoder().items()
                 if t.content not in _CIR_MARKERS}
        end = self.turn_end.strip()
        marks = {m for m in (end, self._turn_start(end)) if m in added or _TAG.fullmatch(m)}
        found = {c for c in {*added, *marks} if c.strip() and not c.strip().isalnum()}
        return (tuple(sorted(found, key=lambda c: (-len(c), c))),
                frozenset(added[c] for c in found if c in added))

    def _turn_start(self, end: str) -> str:
        """The text every role's header starts with (``<|im_start|>`` in ChatML), read off
        the template: what separates a user's and an assistant's message, minus the end of
        turn, common to both roles."""
        msgs = [{"role": "user", "content": _SENTINEL + "u"},
                {"role": "assistant", "content": _SENTINEL + "a"},
                {"role": "user", "content": _SENTINEL + "v"}]
        try:
            full = self.chat_prompt(msgs, add_generation_prompt=False)
        except Exception:  # a template that refuses the probe
            return ""
        parts = full.split(_SENTINEL)
        if len(parts) != 4:
            return ""
        heads = [p[1:].strip() for p in parts[1:3]]  # "u<end>\n<start>assistant\n", ...
        heads = [h.removeprefix(end).strip() if end else h for h in heads]
        a, b = heads
        same = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                    min(len(a), len(b)))
        return a[:same].strip()

    def find_control(self, text: str, pos: int = 0) -> re.Match[str] | None:
        """The first control token (see ``control_strings``) written in ``text``."""
        return self._control.search(text, pos) if self._control is not None else None

    def _turn_end(self) -> str:
        """What the chat template writes after an assistant message, trailing blanks cut
        (``<|im_end|>`` for Qwen): a text-only trace ends with it, trainable, so the model
        learns to stop. Falls back to the eos token when the probe cannot see it."""
        msgs = [{"role": "user", "content": "?"}, {"role": "assistant", "content": _SENTINEL}]
        try:
            full = self.chat_prompt(msgs, add_generation_prompt=False)
        except Exception:  # a template that refuses the probe
            full = ""
        if _SENTINEL in full:
            return full.split(_SENTINEL, 1)[1].rstrip()
        return self.eos_token or ""

    def _prompt_splitter(self) -> tuple[re.Pattern[str] | None, dict[str, int]]:
        """The added tokens the tokenizer itself splits its input at before anything else
        (not normalized, no whitespace stripping): text between two of them tokenizes alone,
        so the system prompt's tokens can be reused across rows. None when a token's flags
        make the split uncertain."""
        added = self.backend.get_added_tokens_decoder()
        plain = {t.content: i for i, t in added.items() if not t.normalized}
        if not plain or any(t.lstrip or t.rstrip or t.single_word for t in added.values()):
            return None, {}
        alts = sorted(plain, key=lambda c: (-len(c), c))
        return re.compile("(" + "|".join(re.escape(c) for c in alts) + ")"), plain

    def encode_prompts(self, prompts: list[str]) -> list[list[int]]:
        """Chat prompts, tokenized piece by piece between added tokens with the pieces
        cached (a system prompt is the same in every row). The first prompts are also encoded
        whole and compared; any difference turns the reuse off for the build."""
        if self._split is None:
            return self.encode_batch(prompts)
        parts = [self._split.split(p) for p in prompts]
        new = list(dict.fromkeys(t for ps in parts for k, t in enumerate(ps)
                                 if k % 2 == 0 and t and t not in self._segments))
        for t, seg in zip(new, self.encode_batch(new), strict=True):
            self._segments[t] = seg
        out: list[list[int]] = []
        for ps in parts:
            ids: list[int] = []
            for k, t in enumerate(ps):
                if k % 2:
                    ids.append(self._added[t])
                elif t:
                    ids += self._segments[t]
            out.append(ids)
        while len(self._segments) > 8192:
            self._segments.popitem(last=False)
        if self._checked < 16:
            take = prompts[:16 - self._checked]
            self._checked += len(take)
            if self.encode_batch(take) != out[:len(take)]:
                self._split = None
                return self.encode_batch(prompts)
        return out


def split_pieces(text: str, segments: list[Segment] | None = None) -> list[tuple[str, int]]:
    """``text`` cut into (piece, mask) pairs that join back to ``text``: 0 for each observation
    (the newline after ``<end_code>`` plus the ``output`` block), 1 for what the model wrote."""
    segs = parse(text) if segments is None else segments
    pieces: list[tuple[str, int]] = []
    pos = 0
    for s in segs:
        if s.kind != "output":
            continue
        start = s.start - 1 if s.start > 0 and text[s.start - 1] == "\n" else s.start
        if start < pos:  # two outputs in a row share no newline
            start = s.start
        if start > pos:
            pieces.append((text[pos:start], 1))
        pieces.append((text[start:s.end], 0))
        pos = s.end
    if pos < len(text):
        pieces.append((text[pos:], 1))
    return pieces


@dataclass(slots=True, frozen=True)
class Joined:
    """``input_ids``/``labels`` list arrays and the token counts the report needs."""

    input_ids: pa.ListArray
    labels: pa.ListArray
    num_tokens: np.ndarray[Any, np.dtype[np.int64]]
    prompt_tokens: int
    observation_tokens: int
    trainable_tokens: int


def _parts(arr: pa.Array) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    lengths = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(arr).to_numpy(zero_copy_only=False)
    return lengths.astype(np.int64), flat


def join_ids(prompt: pa.Array, response: pa.Array, mask: pa.Array, *,
             train_on_observations: bool = False) -> Joined:
    """Row-wise ``prompt ++ response`` and labels: -100 on the prompt and where the response
    mask is 0 (unless observations are trained on), the token id elsewhere. Vectorised over
    the flat buffers: no Python loop per token."""
    lp, fp = _parts(prompt)
    lr, fr = _parts(response)
    lm, fm = _parts(mask)
    if not np.array_equal(lr, lm):
        raise ValueError("response ids and response mask differ in length")
    lt = lp + lr
    out_off = np.zeros(len(lt) + 1, dtype=np.int64)
    np.cumsum(lt, out=out_off[1:])
    p_off = np.concatenate(([0], np.cumsum(lp)))[:-1]
    r_off = np.concatenate(([0], np.cumsum(lr)))[:-1]
    ids = np.empty(int(out_off[-1]), dtype=np.int32)
    labels = np.empty_like(ids)
    at_p = np.arange(len(fp), dtype=np.int64) + np.repeat(out_off[:-1] - p_off, lp)
    at_r = np.arange(len(fr), dtype=np.int64) + np.repeat(out_off[:-1] + lp - r_off, lr)
    ids[at_p] = fp
    ids[at_r] = fr
    labels[at_p] = IGNORE_INDEX
    generated = fm.astype(bool)
    labels[at_r] = fr if train_on_observations else np.where(generated, fr, IGNORE_INDEX)
    offsets = pa.array(out_off.astype(np.int32))
    return Joined(
        input_ids=pa.ListArray.from_arrays(offsets, pa.array(ids)),
        labels=pa.ListArray.from_arrays(offsets, pa.array(labels)),
        num_tokens=lt,
        prompt_tokens=int(lp.sum()),
        observation_tokens=int(len(fm) - generated.sum()),
        trainable_tokens=int((labels != IGNORE_INDEX).sum()),
    )

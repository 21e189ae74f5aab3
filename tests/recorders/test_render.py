"""The versioned renderer: the model-facing text, byte for byte as the II-Researcher demo
renders it (docs/concepts/store.md)."""

from __future__ import annotations

import pytest

from recorders import RENDERER_VERSION, SEARCH, VISIT, RenderOptions, render

V1 = RenderOptions(version=1)


def hit(i: int, host: str = "example.org") -> dict[str, str]:
    return {"url": f"https://{host}/{i}", "title": f"T{i}", "snippet": f"S{i}"}


def test_search_hits_in_the_demo_format_capped_at_num_results() -> None:
    data = {"results": [hit(1), hit(2), hit(3)]}
    assert render(SEARCH, data, {"num_results": 2}) == (
        "\nIndex: 0\nURL: https://example.org/1\nTitle: T1\nPreview: S1\n"
        "\nIndex: 1\nURL: https://example.org/2\nTitle: T2\nPreview: S2\n"
    )
    assert render(SEARCH, data, {"num_results": 2}, V1) == (
        "\nIndex: 1\nURL: https://example.org/1\nTitle: T1\nPreview: S1\n"
        "\nIndex: 2\nURL: https://example.org/2\nTitle: T2\nPreview: S2\n"
    )


def test_huggingface_links_are_dropped_and_the_rest_keep_their_number() -> None:
    """II-Researcher's Serper client (examples/ii_search_4b/core/google_search_client.py)
    enumerates Serper's ``organic`` list from 0 and skips Hugging Face links inside the loop,
    so the hits after one keep their place: Index 1, 2 with no 0."""
    data = {"results": [hit(1, "HuggingFace.co"), hit(2), hit(3)]}
    assert render(SEARCH, data, {"num_results": 2}) == (
        "\nIndex: 1\nURL: https://example.org/2\nTitle: T2\nPreview: S2\n"
        "\nIndex: 2\nURL: https://example.org/3\nTitle: T3\nPreview: S3\n")
    # The numbering is a setting: from 1 and renumbered, as renderer version 1 did.
    assert render(SEARCH, data, {"num_results": 2},
                  RenderOptions(first_index=1, keep_index=False)) == render(
        SEARCH, data, {"num_results": 2}, V1)


def test_version_1_drops_huggingface_links_and_renumbers() -> None:
    data = {"results": [hit(1, "HuggingFace.co"), hit(2), hit(3)]}
    text = render(SEARCH, data, {"num_results": 2}, V1)
    assert "uggingface" not in text.lower()
    assert text.startswith("\nIndex: 1\nURL: https://example.org/2\n")
    assert "\nIndex: 2\nURL: https://example.org/3\n" in text
    kept = render(SEARCH, data, {"num_results": 1}, RenderOptions(version=1,
                                                                 drop_huggingface=False))
    assert "URL: https://HuggingFace.co/1" in kept


def test_search_failures_and_empty_answers_say_so() -> None:
    assert render(SEARCH, {"error": "HTTP 500"}, {}) == "Search failed: HTTP 500"
    assert render(SEARCH, {"results": []}, {}) == "No results found."


def test_visit_text_loses_links_images_and_blank_lines() -> None:
    page = {"url": "https://e.org/", "title": "Night Watch",
            "text": "Night Watch\n\n![img](a.png)A [painting](https://x/) by Rembrandt.\n\n  \n"}
    assert render(VISIT, page, {}) == "Night Watch\nA painting by Rembrandt."
    # The title is put first unless the text opens with it already.
    assert render(VISIT, {**page, "text": "Body."}, {}) == "Night Watch\nBody."


def test_visit_text_is_cut_to_the_first_5000_words() -> None:
    page = {"url": "https://e.org/", "text": "\n".join(" ".join(["w"] * 100) for _ in range(60))}
    words = render(VISIT, page, {}).split()
    assert len(words) == 5000
    short = render(VISIT, page, {}, RenderOptions(max_words=150))
    assert short == " ".join(["w"] * 100) + "\n" + " ".join(["w"] * 50)


def test_visit_failures_say_why() -> None:
    assert render(VISIT, {"url": "https://e.org/", "error": "timeout"}, {}) == (
        "Failed to visit the page: timeout")
    assert render(VISIT, {"url": "https://e.org/", "status_code": 404, "text": ""}, {}) == (
        "Failed to visit the page: HTTP 404")
    assert render(VISIT, {"url": "https://huggingface.co/x", "text": "t"}, {}) == (
        "Access to Hugging Face pages is disabled.")
    assert render(VISIT, {"url": "https://e.org/", "text": "\n\n"}, {}) == (
        "The page has no readable text.")


def test_an_unknown_renderer_version_fails_when_the_options_are_made() -> None:
    assert RENDERER_VERSION == 2
    with pytest.raises(ValueError, match="unknown renderer version 3; valid versions: 1, 2"):
        RenderOptions(version=3)
    with pytest.raises(ValueError, match="unknown tool"):
        render("completion", {}, {})

"""Post-processing: where completions end, and that streamed pieces are never taken back."""

from __future__ import annotations

from tailor.stages.serve.postprocess import PostprocessOptions, Postprocessor, trim_suffix_overlap


def run(text: str, opts: PostprocessOptions, step: int = 1) -> tuple[str, bool]:
    """Feed text as a model would (a few characters at a time); return what the client got."""
    post, got = Postprocessor(opts), []
    for end in range(step, len(text) + step, step):
        delta, stopped = post.feed(text[:end])
        got.append(delta)
        if stopped:
            return "".join(got), True
    got.append(post.finish(text))
    return "".join(got), False


def test_stop_sequence_ends_the_completion_before_it() -> None:
    assert run("a = 1\nSTOP b = 2", PostprocessOptions(stop=("STOP",))) == ("a = 1\n", True)


def test_single_line_stops_at_the_end_of_the_line() -> None:
    opts = PostprocessOptions(single_line=True)
    assert run("total += x\n    return total", opts) == ("total += x", True)


def test_block_end_stops_where_indentation_drops() -> None:
    opts = PostprocessOptions(stop_at_block_end=True, line_prefix="    ")
    text = "total = a + b\n    return total\n\n\ndef other():\n    pass"
    assert run(text, opts) == ("total = a + b\n    return total", True)


def test_block_after_a_def_line_is_its_body() -> None:
    opts = PostprocessOptions(stop_at_block_end=True, line_prefix="def f(x):")
    assert run("\n    return x * 2\nprint(f(3))", opts) == ("\n    return x * 2", True)


def test_a_line_repeating_the_suffix_is_cut() -> None:
    opts = PostprocessOptions(suffix="\n    return result\n")
    text = "result = compute()\n    return result\n"
    assert run(text, opts)[0] == "result = compute()"


def test_one_line_overlap_with_the_suffix_is_trimmed() -> None:
    assert trim_suffix_overlap("x = load(path)  # noqa", "  # noqa\nnext()") == "x = load(path)"
    assert trim_suffix_overlap("f(a)", ")") == "f(a)"  # a short overlap is the model's own


def test_fim_and_eos_texts_never_reach_the_client() -> None:
    opts = PostprocessOptions(forbidden=("<fim_middle>", "<|endoftext|>"))
    assert run("pass<fim_middle>junk", opts, step=3) == ("pass", True)


def test_streamed_pieces_add_up_to_the_final_text_whatever_the_chunking() -> None:
    opts = PostprocessOptions(
        stop=("\n\n\n",), stop_at_block_end=True, line_prefix="    ", suffix="\n    return y\n"
    )
    text = "y = 2 *   x  \n    if y:\n        y -= 1\n    return y\nprint(1)"
    outputs = {run(text, opts, step)[0] for step in (1, 2, 3, 5, 8, 100)}
    assert outputs == {"y = 2 *   x  \n    if y:\n        y -= 1"}

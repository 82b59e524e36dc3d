"""The one-line messages users see: how third-party errors are flattened."""

from __future__ import annotations

from inpaintlab.errors import flat_message, one_line


def test_flat_message_puts_a_multi_line_message_on_one_line():
    error = RuntimeError("first line\n   second  line\n\nthird")
    assert flat_message(error) == "first line second line third"
    assert flat_message(error, limit=10) == "first line"


def test_flat_message_of_an_empty_error_is_its_type():
    assert flat_message(KeyError()) == "KeyError"
    assert flat_message(ValueError("  \n ")) == "ValueError"


def test_one_line_keeps_the_first_line_and_unwraps_worker_errors():
    assert one_line(ValueError("what is wrong\ndetails")) == "what is wrong"
    wrapped = ValueError(
        "Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
        "last):\n  File ...\nbuiltins.ValueError: cannot decode img.png"
    )
    assert one_line(wrapped) == "cannot decode img.png"

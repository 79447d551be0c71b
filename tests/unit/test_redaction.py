"""Redaction covers every form in which the executor writes a secret, and no cut leaves a piece of one."""

from __future__ import annotations

import io
import json

import pytest
from taskrunner.redaction import BLANK, RedactingReader, Redactor, decode_window

SECRETS = [
    'quo"te',
    "back\\slash",
    "new\nline\ttab",
    "caf\u00e9-\u00fcml",
    "astral-\U0001f600-x",
    "</script><b>",
    "mixed'\"\\\u00e9",
]


def encodings(value: str) -> dict[str, str]:
    return {
        "raw": value,
        "json": json.dumps(value),
        "json-ascii": json.dumps(value, ensure_ascii=True),
        "json-unicode": json.dumps(value, ensure_ascii=False),
        "json-object": json.dumps({"k": f"pre {value} post"}, indent=2, sort_keys=True),
        "repr": repr(f"x{value}y"),
    }


@pytest.mark.parametrize("secret", SECRETS)
def test_every_written_form_is_replaced_in_text_and_bytes(secret: str) -> None:
    redactor = Redactor([secret])
    for name, written in encodings(secret).items():
        for out in (redactor.text(written), redactor.bytes(written.encode()).decode()):
            assert BLANK in out, name
            for form in encodings(secret).values():
                assert form.strip("'\"{}") not in out or not form.strip("'\"{}"), name


@pytest.mark.parametrize("secret", SECRETS)
def test_a_redacted_json_document_stays_valid_json(secret: str) -> None:
    document = json.dumps({"token": secret, "header": f"Bearer {secret}"})
    assert json.loads(Redactor([secret]).text(document)) == {"token": BLANK, "header": f"Bearer {BLANK}"}


@pytest.mark.parametrize("secret", [*SECRETS, "plainsecretvalue"])
def test_a_cut_never_leaves_the_beginning_of_a_secret(secret: str) -> None:
    redactor = Redactor([secret])
    for form in {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}:
        for keep in range(1, len(form)):
            text = "x" * 50 + form
            # redacted before the cut: the cut falls inside the replacement
            assert BLANK.startswith(redactor.clip(text, 50 + keep).removeprefix("x" * 50))
            # the text was cut from a longer output: the piece of the secret is dropped, nothing else
            assert redactor.clip(text[: 50 + keep], 1000, cut=True) == "x" * 50


def test_a_cut_keeps_text_that_cannot_begin_a_secret() -> None:
    redactor = Redactor(["s3cret"])
    assert redactor.clip("abc s3cret def", 100) == f"abc {BLANK} def"
    assert redactor.clip("abc s3cret def", 8) == "abc <red"  # inside the replacement: not a secret
    assert redactor.clip("abcdef", 4) == "abcd"
    assert redactor.clip("abc s3", 100, cut=True) == "abc "
    assert redactor.clip("abc s3", 100) == "abc s3"  # the whole text: nothing follows


def test_decoding_a_window_drops_a_character_cut_by_its_end() -> None:
    data = "ab\u00e9".encode()
    assert decode_window(data[:-1], cut=True) == "ab"
    assert decode_window(data, cut=True) == "ab\u00e9"
    assert decode_window(data[:-1], cut=False) == "ab\ufffd"  # the whole output: invalid, shown as such


@pytest.mark.parametrize("secret", ['tok"en\\' * 3, "\u00e9\U0001f600" * 5])
@pytest.mark.parametrize("read_size", [7, 4096, 65536])
def test_the_streaming_reader_redacts_every_form_across_read_boundaries(secret: str, read_size: int) -> None:
    redactor = Redactor([secret])
    forms = [secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]]
    payload = b"".join(b"y" * n + f.encode() for n in (0, 1, 65535, 65536 - 3, 100_000) for f in forms)
    reader = RedactingReader(io.BytesIO(payload), redactor)
    out = b"".join(iter(lambda: reader.read(read_size), b""))
    assert out.count(BLANK.encode()) == 15
    assert not any(f.encode() in out for f in forms)

"""The TTS benchmark corpus fills every reply template with a sample value for every field."""

from __future__ import annotations

from bench.tts_corpus import SAMPLE_VALUES, has_han, reply_texts
from dialog.replies import FIELDS, templates


def test_every_field_has_a_sample_value() -> None:
    names = set().union(*FIELDS.values())
    assert len(names) == 87
    assert set(SAMPLE_VALUES) == names
    assert all(isinstance(v, str) and v for v in SAMPLE_VALUES.values())


def test_every_template_is_filled_in_file_order() -> None:
    texts = reply_texts()
    assert [key for key, _ in texts] == list(templates())
    assert set(templates()) == set(FIELDS)


def test_filled_replies_are_complete_chinese_text() -> None:
    for key, text in reply_texts():
        assert text.strip(), key
        assert "{" not in text and "}" not in text, (key, text)
        if FIELDS[key]:  # a field-less template is said as written (「App」 is a channel's name)
            assert has_han(text), (key, text)
        text.encode("utf-8")


def test_values_carry_what_a_normaliser_must_handle() -> None:
    corpus = "".join(text for _, text in reply_texts())
    for sample in ("32.8元", "1299元", "12月6号", "12月5日19:30", "09:00", "XL码", "240ml", "95%", "8.5折"):
        assert sample in corpus, sample
    assert SAMPLE_VALUES["tracking_no"][:2].isalpha() and 10 <= len(SAMPLE_VALUES["tracking_no"][2:]) <= 15

"""dripline.mime and dripline._flowed: the pieces both render paths write messages with."""

from __future__ import annotations

import binascii
import quopri

from hypothesis import given, settings
from hypothesis import strategies as st
from mail_checks import ENCODED_WORD, parse, rfc2047

from dripline._flowed import WIDTH, flow_text, unflow
from dripline.mime import MAX_QP_LINE, encode_address, encode_header, qp_encode, soft_break

TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)


def test_binascii_alone_writes_77_character_lines():
    # The fault behind issue 12 item 1: a line ending in white space gains "=20" at 77.
    assert max(len(ln) for ln in binascii.b2a_qp(b"x" * 74 + b" \nfoo").split(b"\n")) == 77
    assert max(len(ln) for ln in qp_encode("x" * 74 + " \nfoo").split(b"\r\n")) <= 76


def test_lines_mbox_would_mangle_are_encoded():
    # RFC 2049 section 3 (8): a line starting "From " becomes ">From " in an mbox, also
    # when a soft break puts it there, or a fast-path piece (after a soft break) starts so.
    text = "From here\n" + "x" * 75 + "From there\n.\n" + "y" * 75 + "From\nend"
    for encoded in (qp_encode(text), soft_break(qp_encode("From a value", soft_end=True))):
        lines = encoded.split(b"\r\n")
        assert not [ln for ln in lines if ln.startswith(b"From ") or ln == b"."], lines
        assert all(len(line) <= MAX_QP_LINE for line in lines)
    assert quopri.decodestring(qp_encode(text)).decode().replace("\r\n", "\n") == text


@settings(max_examples=300)
@given(pieces=st.lists(TEXT, min_size=1, max_size=5))
def test_quoted_printable_pieces_join_to_the_text_with_short_lines(pieces):
    # The fast path joins pieces with soft breaks; every line stays within 76 characters.
    encoded = b"".join(soft_break(qp_encode(p, soft_end=True)) for p in pieces[:-1])
    encoded += qp_encode(pieces[-1])
    assert all(len(line) <= MAX_QP_LINE for line in encoded.split(b"\r\n"))
    expected = "".join(p.replace("\r\n", "\n").replace("\r", "\n") for p in pieces)
    assert quopri.decodestring(encoded).decode("utf-8").replace("\r\n", "\n") == expected


@settings(max_examples=300)
@given(value=TEXT.filter(lambda v: v.isprintable()))
def test_subjects_encode_into_short_words_that_decode_back(value):
    header = encode_header("Subject", value)
    lines = header.split(b"\r\n")
    assert all(len(line) <= 78 for line in lines)
    assert all(len(word) <= 75 for word in ENCODED_WORD.findall(header))
    assert rfc2047(b" ".join(ln.strip() for ln in lines).split(b":", 1)[1].strip()) == value
    assert str(parse(header + b"\r\nbody")["Subject"]) == value


def test_display_name_with_specials_is_quoted_and_an_encoded_word_marker_encoded():
    assert encode_address("To", 'O\'Brien "Bob"', "a@example.com") == (
        b'To: "O\'Brien \\"Bob\\"" <a@example.com>\r\n'
    )
    header = encode_address("To", "=?utf-8?b?SGk=?=", "a@example.com")
    assert b"SGk=" not in header  # the marker itself is encoded, so it reads back as text
    assert parse(header + b"\r\nx")["To"].addresses[0].display_name == "=?utf-8?b?SGk=?="


LINE = st.text(alphabet=st.sampled_from("abcdefghij éü😀-.,"), max_size=400).map(
    lambda s: " ".join(s.split())
)


@settings(max_examples=300)
@given(lines=st.lists(LINE, max_size=6), quoted=st.booleans())
def test_flowed_text_wraps_at_76_and_reads_back_as_written(lines, quoted):
    text = "\n".join(("> " + ln if ln else ">") if quoted else ln for ln in lines)
    flowed = flow_text(text)
    for line in flowed.split("\n"):
        assert len(line.rstrip(" ")) <= WIDTH or " " not in line.strip(" >")
    assert unflow(flowed) == text


def test_lines_a_reader_would_misread_are_space_stuffed():
    flowed = flow_text("From here on\n  indented\nplain")
    assert flowed.split("\n") == [" From here on", "   indented", "plain"]
    assert unflow(flowed) == "From here on\n  indented\nplain"

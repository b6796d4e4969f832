"""What the ELM327 prints, read per ECU: answers in the formats of the ELM327 data sheet
(headers on, spaces on) from one ECU and from two, 11- and 29-bit CAN, the older
buses, a multi-frame message, the chip's error words, and lines that are damaged."""

from __future__ import annotations

from gateway.sources.obd import read_answer, supported, trouble_codes


def test_two_ecus_answering_one_request_are_kept_apart():
    got = read_answer("7E8 06 41 00 BE 3E A8 13 00\r7E9 06 41 00 98 18 80 11 00\r\r", 6)
    assert got.error == "" and set(got.messages) == {"7E8", "7E9"}
    assert supported(got.messages["7E8"], 0) >= {0x01, 0x03, 0x04, 0x05, 0x0C, 0x0D}
    assert 0x0F in supported(got.messages["7E8"], 0)
    assert 0x0F not in supported(got.messages["7E9"], 0)


def test_a_29_bit_header_names_the_ecu_by_its_whole_id():
    got = read_answer("18 DA F1 10 04 41 0C 1A F8 00 00 00\r", 7)
    assert got.messages == {"18DAF110": bytes.fromhex("410C1AF8")}


def test_a_k_line_answer_loses_its_header_and_checksum():
    got = read_answer("SEARCHING...\r48 6B 10 41 0D 32 C9\r", 3)
    assert got.messages == {"10": bytes.fromhex("410D32")}


def test_a_multi_frame_message_is_put_together_in_order():
    lines = ("7E8 10 14 49 02 01 57 50 30\r7E8 21 5A 5A 5A 39 39 5A 54\r"
             "7E8 22 53 33 39 32 31 32 34\r")
    got = read_answer(lines, 6)
    assert got.messages["7E8"][3:].decode() == "WP0ZZZ99ZTS392124"


def test_trouble_codes_on_can_and_on_the_k_line():
    can = read_answer("7E8 06 43 02 01 33 C1 00 00\r", 6).messages["7E8"]
    assert trouble_codes(can, can=True) == ["P0133", "U0100"]
    kline = read_answer("48 6B 10 43 01 33 00 00 00 00 E2\r", 3).messages["10"]
    assert trouble_codes(kline, can=False) == ["P0133"]


def test_the_chips_words_are_errors_not_data():
    assert read_answer("SEARCHING...\rUNABLE TO CONNECT\r", 0).error == "no_ecu"
    assert read_answer("NO DATA\r", 6).error == "no_data"
    assert read_answer("BUS INIT: ...ERROR\r", 3).error == "no_ecu"
    assert read_answer("CAN ERROR\r", 6).error == "bus_error"
    assert read_answer("?\r", 6).error == "not_understood"


def test_damaged_lines_are_counted_and_the_good_ones_kept():
    got = read_answer("7E8 06 41 0C 1A\r7E9 0G 41\r7E8 03 41 0D 32 00 00 00 00\r", 6)
    # 7E8's first frame says six bytes and brings three; 7E9's is not hex.
    assert got.unreadable == 2
    assert "7E9" not in got.messages

#!/usr/bin/env python3
"""Sends the same SIP messages through two builds' header walks and reports where their results differ.

    walk-diff.py PINS_A PINS_B [CASES] [SEED] [FILLS]

PINS_A and PINS_B are bpffs directories each holding a loaded walk_probe (walk-probe.bpf.c). The messages are
random header blocks built from header lines in their usual forms and beside them (CSeq numbers of every length
and wrap, blanks, methods too long, folds, lone CRs, credentials, lines whose first byte begins no header the walk
reads), some cut at a random byte, then every cut of a few fixed ones; every other message is walked as one whose
To header is wanted. Before each walk the probe fills the buffer the message is copied into with a byte: the
same random byte on both sides, or with FILLS "apart", a different one on each side, so that a walk whose result
depends on the bytes past the message (an earlier message's, in the filter) differs from itself. A difference in
what either walk found (flags, CSeq number and method, Call-ID hash, nonce, where the From value starts, where the
walk stopped and in what state) is printed with its message.
"""
import random
import struct
import subprocess
import sys
import tempfile

pins_a, pins_b = sys.argv[1], sys.argv[2]
count = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
random.seed(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
apart = len(sys.argv) > 5 and sys.argv[5] == "apart"
work = tempfile.mkdtemp()


def walk(pins, message, want_to, fill):
    frame = bytes([want_to, fill]) + bytes(62) + message
    with open(f"{work}/in", "wb") as f:
        f.write(frame)
    subprocess.run(["bpftool", "prog", "run", "pinned", f"{pins}/walk_probe", "data_in", f"{work}/in",
                    "data_out", f"{work}/out"], check=True, capture_output=True)
    with open(f"{work}/out", "rb") as f:
        return struct.unpack("<12I", f.read(48))


def digits():
    n = random.choice([0, 1, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 16, 20])
    return "".join(random.choice("0123456789") for _ in range(n))


def cseq():
    method = random.choice(["REGISTER", "INVITE", "ACK", "A", "OPTIONS", "12345678", "123456789", "REGISTERXYZ",
                            "Register", "ABCDEFGH", "ABCDEFG", ""])
    blanks = random.choice(["", " ", "  ", "\t", " \t ", "        ", "         \t"])
    end = random.choice(["", " ", "\t", "x", " x", "\r", ","])
    colon = random.choice([": ", ":", ":  ", ": \t", ":\r\n "])
    return "CSeq" + colon + digits() + blanks + method + end


def line():
    kind = random.random()
    if kind < 0.45:
        return cseq()
    return random.choice([
        "User-Agent: friendly-scanner", "User-Agent:  Linphone/5.2", "user-agent:\r\n sipvicious",
        "From: <sip:100@198.18.0.2>;tag=" + digits(), "f:\"x\"<sip:1@x>", "Call-ID: " + digits() + "@198.18.1.1",
        "i:" + digits(), "To: <sip:1@x>", "Via: SIP/2.0/UDP 198.18.1.1:5060;branch=z9hG4bK" + digits(),
        "Authorization: Digest username=\"1\", nonce=\"" + digits() + "\", uri=\"sip:x\"", "Max-Forwards: 70",
        "Allow: PRACK, INVITE, ACK, BYE, CANCEL, UPDATE, INFO, SUBSCRIBE, NOTIFY, REFER, MESSAGE, OPTIONS",
        "X-H: " + "".join(random.choice("0123456789 \tAZ\r:x") for _ in range(random.randint(0, 20))),
        "P-Asserted-Identity: <sip:+1555" + digits() + "@x>",
        # First bytes of every kind: letters of no header read (either case), blanks, digits, and the bytes
        # beside the letters ('@', '[', '`', '{') and past ASCII.
        random.choice("bBdDeEgGhHjJkKlLmMnNoOqQsSvVxXyYzZtT \t0123456789@[`{\x7f") + "x: " + digits(),
        "\xc1\xe1: " + digits(), "to: <sip:2@x>", "t: <sip:3@x>", "Supported: path", "expires: 300",
    ])


messages = []
for _ in range(count):
    start = random.choice(["REGISTER", "INVITE", "OPTIONS"]) + " sip:100@198.18.0.2 SIP/2.0\r\n"
    block = start + "".join(line() + random.choice(["\r\n", "\r\n", "\n"]) for _ in range(random.randint(1, 6)))
    message = (block + "\r\n").encode("latin-1")
    if random.random() < 0.3:
        message = message[:random.randint(len(start), len(message))]
    messages.append(message)
random_count = len(messages)
for fixed in ["CSeq: 4711 REGISTER", "CSeq: 12345678901234 INVITE", "CSeq:  1\t OPTIONSXY", "CSeq: 0000000042 A",
              "CSeq: 12345678 REGISTER", "CSeq: 1 \t  \t   REGISTER"]:
    message = ("OPTIONS sip:x SIP/2.0\r\n" + fixed + "\r\nCall-ID: q\r\n\r\n").encode()
    messages += [message[:n] for n in range(24, len(message) + 1)]
# Every cut of a block of the names the walk reads, long and compact: a cut within a name leaves its kind to be
# told from the bytes the copy holds.
message = ("OPTIONS sip:x SIP/2.0\r\nfrom: a\r\nf: b\r\nP-Asserted-Identity: c\r\np-preferred-identity: d\r\n"
           "Proxy-Authorization: e\r\nProxy-Authenticate: e\r\nRemote-Party-ID: e\r\nWWW-Authenticate: e\r\n"
           "Authorization: e\r\nCall-ID: f\r\ni: g\r\nCSeq: 1 A\r\nTo: h\r\nt: i\r\nUser-Agent: j\r\n\r\n").encode()
messages += [message[:n] for n in range(24, len(message) + 1)]

LOOKED_FOR = b"rRsS-pP\r\n :\t"


def fill():
    return random.choice(LOOKED_FOR if random.random() < 0.5 else bytes(range(256)))


different = 0
for i, message in enumerate(messages):
    # Every other message with want_to (as an INVITE's walk with fraud checks on).
    want_to = i & 1
    # Half the fills are bytes the walk looks for next: a header name's second or third, the CR and LF, blanks.
    # Apart, a fixed cut is walked with each of those beside a fill of 0.
    fill_a = fill()
    pairs = [(fill_a, fill_a)]
    if apart:
        pairs = [(0, c) for c in LOOKED_FOR] if i >= random_count else [(fill_a, fill())]
    for fill_a, fill_b in pairs:
        a, b = walk(pins_a, message, want_to, fill_a), walk(pins_b, message, want_to, fill_b)
        if a != b:
            different += 1
            if different <= 10:
                print(repr(message), f"want_to {want_to}, fills {fill_a} {fill_b}", a, b, sep="\n  ")
            break
print(f"{len(messages)} messages, {different} walked differently")
sys.exit(1 if different else 0)

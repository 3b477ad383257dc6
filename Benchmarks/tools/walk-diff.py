#!/usr/bin/env python3
"""Sends the same SIP messages through two builds' header walks and reports where their results differ.

    walk-diff.py PINS_A PINS_B [CASES] [SEED]

PINS_A and PINS_B are bpffs directories each holding a loaded walk_probe (walk-probe.bpf.c). The messages are
random header blocks built from header lines in their usual forms and beside them (CSeq numbers of every length
and wrap, blanks, methods too long, folds, lone CRs, credentials), some cut at a random byte, then every cut of a
few fixed ones. A difference in what either walk found (flags, CSeq number and method, Call-ID hash, nonce, where
the From value starts, where the walk stopped and in what state) is printed with its message.
"""
import random
import struct
import subprocess
import sys
import tempfile

pins_a, pins_b = sys.argv[1], sys.argv[2]
count = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
random.seed(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
work = tempfile.mkdtemp()


def walk(pins, message):
    frame = bytes(64) + message
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
    ])


messages = []
for _ in range(count):
    start = random.choice(["REGISTER", "INVITE", "OPTIONS"]) + " sip:100@198.18.0.2 SIP/2.0\r\n"
    block = start + "".join(line() + random.choice(["\r\n", "\r\n", "\n"]) for _ in range(random.randint(1, 6)))
    message = (block + "\r\n").encode()
    if random.random() < 0.3:
        message = message[:random.randint(len(start), len(message))]
    messages.append(message)
for fixed in ["CSeq: 4711 REGISTER", "CSeq: 12345678901234 INVITE", "CSeq:  1\t OPTIONSXY", "CSeq: 0000000042 A",
              "CSeq: 12345678 REGISTER", "CSeq: 1 \t  \t   REGISTER"]:
    message = ("OPTIONS sip:x SIP/2.0\r\n" + fixed + "\r\nCall-ID: q\r\n\r\n").encode()
    messages += [message[:n] for n in range(24, len(message) + 1)]

different = 0
for message in messages:
    a, b = walk(pins_a, message), walk(pins_b, message)
    if a != b:
        different += 1
        if different <= 10:
            print(repr(message), a, b, sep="\n  ")
print(f"{len(messages)} messages, {different} walked differently")
sys.exit(1 if different else 0)

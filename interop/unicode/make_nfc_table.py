#!/usr/bin/python3
"""Writes the tables the runtime's NFC (runtime/Diffusion.Runtime/Text/Nfc.cs) reads, from Python's own unicodedata, and
a test fixture of strings with Python's NFC of them:

    /usr/bin/python3 interop/unicode/make_nfc_table.py

CLIP's tokenizer (transformers' BasicTokenizer) normalizes prompts to NFC with Python's unicodedata. .NET's
string.Normalize needs ICU, which an app in globalization-invariant mode (the default here, and common in containers)
does not load — so the runtime carries the canonical data itself, of the Unicode version Python has (Debian 12: 14.0).
Table lines (hex): "D cp a [b]" canonical decomposition; "C first last ccc" canonical combining class of a range;
"X cp" a two-code-point decomposition that does not compose back (composition exclusions, non-starter decompositions).
"""
import json
import os
import random
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = os.path.join(HERE, "..", "..", "runtime", "Diffusion.Runtime", "Text", "NfcTable.txt")
FIXTURE = os.path.join(HERE, "..", "..", "tests", "Fixtures", "Unicode", "nfc.json")


def main():
    lines = [f"# Unicode {unicodedata.unidata_version} canonical data from Python's unicodedata "
             "(interop/unicode/make_nfc_table.py)"]
    pairs = []
    for cp in range(0x110000):
        d = unicodedata.decomposition(chr(cp))
        if d and not d.startswith("<"):
            parts = d.split()
            lines.append("D " + " ".join([f"{cp:X}"] + parts))
            if len(parts) == 2:
                pairs.append(cp)
                composed = unicodedata.normalize("NFC", "".join(chr(int(p, 16)) for p in parts))
                if composed != chr(cp):
                    lines.append(f"X {cp:X}")
    start, current = None, 0
    for cp in range(0x110001):
        ccc = unicodedata.combining(chr(cp)) if cp < 0x110000 else 0
        if ccc != current:
            if current:
                lines.append(f"C {start:X} {cp - 1:X} {current}")
            start, current = cp, ccc
    with open(TABLE, "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")
    # Strings mixing composites, their decompositions, combining marks in every order and Hangul jamo.
    rng = random.Random(7)
    marks = [cp for cp in range(0x300, 0x370)] + [0x1DC0, 0x20D0, 0x302A, 0x0F71, 0x05B0, 0x0651]
    pool = [chr(cp) for cp in rng.sample(pairs, 400)]
    pool += [unicodedata.normalize("NFD", c) for c in pool[:200]]
    pool += [chr(m) for m in marks] + [chr(cp) for cp in range(0x1100, 0x1113)] + [chr(cp) for cp in range(0x1161, 0x1176)]
    pool += [chr(cp) for cp in range(0x11A8, 0x11C3)] + [chr(rng.randrange(0xAC00, 0xD7A4)) for _ in range(30)]
    pool += list("aeiouAEIOUnNcCsSzZ") + ["\u212b", "\u2126", "\u0344", "\u0f73", "\u1e9b\u0323", "\U0001d15e"]
    cases = []
    for _ in range(1500):
        s = "".join(rng.choice(pool) for _ in range(rng.randint(1, 8)))
        cases.append([s, unicodedata.normalize("NFC", s)])
    os.makedirs(os.path.dirname(FIXTURE), exist_ok=True)
    with open(FIXTURE, "w", encoding="ascii") as f:
        json.dump({"unicode": unicodedata.unidata_version, "cases": cases}, f, ensure_ascii=True)
    print(f"{len(lines)} table lines -> {os.path.normpath(TABLE)}; {len(cases)} cases -> {os.path.normpath(FIXTURE)}")


if __name__ == "__main__":
    main()

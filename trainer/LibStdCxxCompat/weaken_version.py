#!/usr/bin/env python3
"""Marks one symbol-version requirement of an ELF64 shared library weak (VER_FLG_WEAK in its .gnu.version_r entry),
so that the dynamic loader accepts a libstdc++ that lacks that version and binds the symbols to whatever library
defines them. Usage: weaken_version.py LIBRARY VERSION (edits LIBRARY in place; run it on a copy)."""
import struct, sys

VER_FLG_WEAK = 0x2


def main(path, version):
    with open(path, "r+b") as f:
        elf = bytearray(f.read())
        if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
            sys.exit(f"{path}: not a little-endian ELF64 file")
        shoff, = struct.unpack_from("<Q", elf, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
        names_offset = sections[shstrndx][4]

        def cstr(offset):
            return bytes(elf[offset:elf.index(0, offset)]).decode()

        verneed = next((s for s in sections if cstr(names_offset + s[0]) == ".gnu.version_r"), None)
        if verneed is None:
            sys.exit(f"{path}: no .gnu.version_r section")
        strtab = sections[verneed[6]][4]  # sh_link: the dynamic string table
        entry, found = verneed[4], 0
        while True:
            _, count, _, aux, next_entry = struct.unpack_from("<HHIII", elf, entry)
            a = entry + aux
            for _ in range(count):
                _, flags, _, name, next_aux = struct.unpack_from("<IHHII", elf, a)
                if cstr(strtab + name) == version:
                    struct.pack_into("<H", elf, a + 4, flags | VER_FLG_WEAK)
                    found += 1
                a += next_aux
            if next_entry == 0:
                break
            entry += next_entry
        if found == 0:
            sys.exit(f"{path}: requires no symbol version {version}")
        f.seek(0)
        f.write(elf)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])

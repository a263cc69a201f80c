#!/usr/bin/env python3
"""Regenerates src/clip_bpe/merges.zlib: CLIP ViT-L/14's byte-level BPE
vocabulary, which SD1.5, SDXL and Flux all use as their CLIP tokenizer, in
the compact form Ategnatos embeds (src/clip_bpe.rs reads it).

Where it comes from: `bpe_simple_vocab_16e6.txt.gz` as shipped inside the
`open_clip_torch` 3.3.0 wheel on PyPI (the same file OpenAI published with
CLIP, and the one open_clip's and Hugging Face's CLIP tokenizers are built
from). The script downloads the wheel with pip (no other network traffic),
checks both hashes below, and writes the file:

    python3 scripts/clip_vocab.py            # writes src/clip_bpe/merges.zlib
    python3 scripts/clip_vocab.py --check    # only compares with the committed file
    python3 scripts/clip_vocab.py --reference WORD...
        # prints what open_clip's own tokenizer makes of each WORD, as
        # `word<TAB>id id id`: the reference ids in src/clip_bpe.rs's tests

The format: a zlib stream of 48,894 merges in rank order, each two
little-endian u16 token ids (left, right). Ids follow CLIP's vocabulary
order: 0-255 are the 256 byte characters in GPT-2's byte-to-unicode order,
256-511 the same with `</w>` (end of word) appended, 512 + r the token that
merge r makes (left + right), then 49406 `<|startoftext|>` and 49407
`<|endoftext|>`: 49,408 tokens. Merge order is rank order, so the ids carry
both the vocabulary and the merge ranks in 168 KB. (Measured alternatives:
the merges as text are 525 KB, 208 KB deflated; the whole-word tokens alone
are 90 KB deflated but cannot say how a word splits; the ids split into byte
planes save another 9 KB, not worth a second layout.)

`--reference` imports open_clip's tokenizer from the wheel; it needs the
`regex` package, and stands in for torch, numpy and ftfy when they are not
installed (the tokenizer only names them; ftfy's text repair does nothing to
the plain ASCII words the tests use).
"""

import gzip
import hashlib
import io
import os
import struct
import subprocess
import sys
import tempfile
import types
import zipfile
import zlib

VERSION = "3.3.0"
WHEEL = f"open_clip_torch-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "c549ad5ed6bfc119cc11105033c0a2b9d7a2a4afeb40a58a09aab3da1a0043ce"
VOCAB_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
VOCAB_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
# CLIP keeps merges[1 : 49152 - 256 - 2 + 1] of the file (line 0 is a header).
MERGES = 49152 - 256 - 2
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "clip_bpe", "merges.zlib")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def download(workdir):
    subprocess.run(
        [sys.executable, "-m", "pip", "download", f"open_clip_torch=={VERSION}",
         "--no-deps", "--only-binary", ":all:", "-d", workdir],
        check=True,
    )
    path = os.path.join(workdir, WHEEL)
    with open(path, "rb") as f:
        got = sha256(f.read())
    if got != WHEEL_SHA256:
        sys.exit(f"{WHEEL} has sha256 {got}, expected {WHEEL_SHA256}")
    return path


def vocab_gz(wheel):
    with zipfile.ZipFile(wheel) as z:
        data = z.read(VOCAB_MEMBER)
    if sha256(data) != VOCAB_SHA256:
        sys.exit(f"{VOCAB_MEMBER} has sha256 {sha256(data)}, expected {VOCAB_SHA256}")
    return data


def byte_chars():
    """GPT-2's byte-to-unicode table, in CLIP's vocabulary order."""
    order = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = order[:]
    extra = 0
    for b in range(256):
        if b not in order:
            order.append(b)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def pack(gz):
    lines = gzip.decompress(gz).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : MERGES + 1]]
    assert len(merges) == MERGES and all(len(m) == 2 for m in merges)
    vocab = byte_chars()
    vocab += [c + "</w>" for c in vocab]
    ids = {token: i for i, token in enumerate(vocab)}
    out = bytearray()
    for a, b in merges:
        out += struct.pack("<HH", ids[a], ids[b])
        ids["".join((a, b))] = len(vocab)
        vocab.append(a + b)
    assert len(vocab) + 2 == 49408
    return zlib.compress(bytes(out), 9)


def reference(wheel, words):
    import regex  # noqa: F401  (open_clip's tokenizer needs it)

    for name in ("torch", "numpy", "ftfy"):
        try:
            __import__(name)
        except ImportError:
            stub = types.ModuleType(name)
            stub.LongTensor = stub.Tensor = object
            stub.fix_text = lambda s: s
            sys.modules[name] = stub
    tmp = tempfile.mkdtemp()
    with zipfile.ZipFile(wheel) as z:
        z.extract("open_clip/tokenizer.py", tmp)
        z.extract(VOCAB_MEMBER, tmp)
    sys.path.insert(0, os.path.join(tmp, "open_clip"))
    import tokenizer

    tok = tokenizer.SimpleTokenizer(os.path.join(tmp, VOCAB_MEMBER))
    for w in words:
        print(w, " ".join(str(i) for i in tok.encode(w)), sep="\t")


def main():
    args = sys.argv[1:]
    with tempfile.TemporaryDirectory() as workdir:
        wheel = download(workdir)
        if args and args[0] == "--reference":
            reference(wheel, args[1:])
            return
        packed = pack(vocab_gz(wheel))
        if args and args[0] == "--check":
            with open(OUT, "rb") as f:
                committed = zlib.decompress(f.read())
            same = committed == zlib.decompress(packed)
            print("the committed file matches" if same else "the committed file DIFFERS")
            sys.exit(0 if same else 1)
        with open(OUT, "wb") as f:
            f.write(packed)
        print(f"wrote {OUT}: {len(packed)} bytes, {MERGES} merges")


if __name__ == "__main__":
    main()

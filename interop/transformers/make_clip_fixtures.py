#!/usr/bin/python3
"""Builds the CLIP tokenizer fixtures under tests/Fixtures/Clip with transformers' own CLIPTokenizer.

    /usr/bin/python3 interop/transformers/make_clip_fixtures.py --transformers /path/to/transformers/src

--transformers is a source tree of huggingface/transformers holding transformers/models/clip/tokenization_clip.py and
transformers/tokenization_utils.py (`git show <commit>:<path>` of each; the repository is too large to bring whole).
Needs Debian 12's python3-regex; ftfy must not be installed (Debian has none), so CLIPTokenizer takes its BasicTokenizer
path, as diffusers' pipelines do where ftfy is missing. No pretrained vocabulary can be downloaded here, so a byte-level
BPE vocabulary is learned for the test (CLIP's layout: 256 byte symbols, the same with </w>, the merges, then
<|startoftext|> and <|endoftext|>). Writes:
  sd1/tokenizer/  vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json (pad <|endoftext|>, SD 1.x)
  sd2/tokenizer/  the same vocabulary with pad "!" (SD 2.x)
  cases.json      prompts with CLIPTokenizer's tokens and input_ids (padded to 77, truncated) for both folders
"""
import argparse
import collections
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tokenizer_base_stub  # noqa: E402

OUT = os.path.join(HERE, "..", "..", "tests", "Fixtures", "Clip")
MERGES = 1500
MAX_LENGTH = 77

WORDS = """a an the of and with in on at by for from to into over under photo photograph portrait painting drawing
sketch render illustration oil watercolor digital art artwork concept cinematic lighting dramatic soft golden hour
sunset sunrise night day morning evening city street forest mountain river lake ocean sea beach desert snow rain fog
cloud sky star moon sun galaxy nebula planet castle tower bridge house cabin village garden flower rose tulip tree
cat dog fox wolf bear bird owl eagle horse dragon robot astronaut knight wizard witch queen king princess warrior
old young happy sad beautiful ugly tiny huge giant small big red green blue yellow orange purple pink black white
grey gray brown silver gold golden dark light bright highly detailed intricate sharp focus trending artstation
octane unreal engine 4k 8k hdr bokeh wide angle lens 35mm 50mm 85mm f/1.8 masterpiece best quality ultra realistic
photorealistic hyperrealistic studio ghibli van gogh monet rembrandt picasso style of by greg rutkowski alphonse mucha
don't can't it's i'm you're we've they'll she'd isn't won't café naïve résumé crème brûlée über straße façade
jalapeño smörgåsbord fjörd ångström zürich são paulo méxico señor niño coöperate""".split()
SYMBOLS = list(",.;:!?-_()[]{}<>/\\|@#$%^&*+=~`'\"…–—«»“”‘’")
EXTRAS = ["东京", "北京", "漢字", "日本語", "こんにちは", "カタカナ", "한국어", "서울", "Москва", "привет", "Ελλάδα",
          "ΟΔΟΣ", "مرحبا", "שלום", "नमस्ते", "ไทย", "😀", "🐱", "🚀", "👍🏽", "❤️", "👩‍🚀", "🇫🇷", "✨", "©", "®", "™",
          "°", "½", "²", "€", "£", "¥", "𝐁𝐨𝐥𝐝", "𠀀𠀁", "İstanbul", "ǅ", "ﬁne", "Ⅻ", "①", "١٢٣", "e\u0301", "a\u0308"]


def byte_symbols(clip):
    return list(clip.bytes_to_unicode().values())


def learn_merges(clip, corpus, count):
    """CLIP-style BPE: words as byte symbols with </w> on the last, the most frequent adjacent pair merged each round."""
    encoder = clip.bytes_to_unicode()
    basic = clip.BasicTokenizer(strip_accents=False, do_split_on_punc=False)
    import regex
    pattern = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE)
    words = collections.Counter()
    for text in corpus:
        for token in pattern.findall(" ".join(basic.tokenize(text))):
            symbols = [encoder[b] for b in token.encode("utf-8")]
            symbols[-1] += "</w>"
            words[tuple(symbols)] += 1
    merges = []
    for _ in range(count):
        pairs = collections.Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        merged = collections.Counter()
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    return merges


def write_folder(folder, vocab, merges, pad):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    special = {"content": None, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": dict(special, content="<|startoftext|>"),
                   "eos_token": dict(special, content="<|endoftext|>"), "pad_token": pad,
                   "unk_token": dict(special, content="<|endoftext|>")}, f, indent=2)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"add_prefix_space": False, "bos_token": dict(special, content="<|startoftext|>"),
                   "do_lower_case": True, "eos_token": dict(special, content="<|endoftext|>"), "errors": "replace",
                   "model_max_length": MAX_LENGTH, "pad_token": pad, "tokenizer_class": "CLIPTokenizer",
                   "unk_token": dict(special, content="<|endoftext|>")}, f, indent=2)


def prompts(rng):
    fixed = [
        "", " ", "a", "A", "a photo of a cat", "A Photo Of A CAT", "an astronaut riding a horse on the moon",
        "it's a dog's life", "don't, won't, can't; they'll (maybe) go!", "''s 's 'S 'sup 're'", "rock'n'roll",
        "hello,world", "hello , world .", "3.14159 and 2,718", "year 2024, 100% done", "12345678901234567890",
        "f/1.8 85mm", "#hashtag @user $100 ^_^ *bold* ~tilde~ `code`", "a\tb\nc\rd", "  leading and trailing  ",
        "many     spaces   between", "\u00a0non-breaking\u2003em-space\u3000ideographic", "line\u2028separator\u2029para",
        "zero\u200bwidth\u200djoiner\ufeffbom", "nul\x00byte", "replacement\ufffdchar", "bell\x07 and \x1f unit sep",
        "café naïve résumé", "cafe\u0301 decomposed", "CRÈME BRÛLÉE", "Straße ÜBER", "İstanbul İİ", "ΟΔΟΣ ΣΟΦΟΣ Σ",
        "ǅungla ǈ", "ﬁne ﬂow", "東京タワーの夜景", "北京 is 北京", "漢字と日本語", "한국어 텍스트", "Москва ночью",
        "😀😀😀", "a 🐱 on a 🚀", "👩‍🚀 astronaut", "👍🏽 thumbs", "flag 🇫🇷 🇯🇵", "❤️ love", "✨sparkles✨",
        "𝐁𝐨𝐥𝐝 math", "𠀀𠀁 ext-b", "١٢٣ arabic digits", "①②③ circled", "Ⅻ roman", "½ ² ³", "€10 £5 ¥100",
        "!", "! !! !!!", "wow!!!", "hi!there", "<|startoftext|>", "<|endoftext|>", "a <|endoftext|> b",
        "x<|startoftext|>y", "<|ENDOFTEXT|> upper", "<|endoftext", "|endoftext|>", "<|startoftext|><|endoftext|>",
        "«quoted» “curly” ‘single’", "em—dash en–dash…ellipsis", "html &amp; &lt;tags&gt;", "a_b-c.d/e\\f",
        "😀" * 40, "word " * 80, "red, green, blue, " * 20, ", ".join(WORDS[:60]),
    ]
    generated = []
    pool = WORDS * 3 + SYMBOLS + EXTRAS
    for k in range(202):
        n = rng.randint(60, 120) if k % 20 == 0 else rng.randint(1, 40)
        parts = []
        for _ in range(n):
            token = rng.choice(pool)
            if rng.random() < 0.15:
                token = token.upper() if rng.random() < 0.5 else token.capitalize()
            if rng.random() < 0.1:
                token += rng.choice(SYMBOLS)
            parts.append(token)
        sep = [" ", " ", " ", "  ", ", ", "\t", "\n", ""]
        generated.append("".join(p + rng.choice(sep) for p in parts).strip(" "))
    return fixed + generated


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--transformers", required=True, help="huggingface/transformers' src folder")
    args = parser.parse_args()
    clip = tokenizer_base_stub.install(args.transformers)
    rng = random.Random(1234)
    cases = prompts(rng)
    corpus = cases + [" ".join(rng.choice(WORDS + EXTRAS) for _ in range(12)) for _ in range(400)]
    merges = learn_merges(clip, corpus, MERGES)
    symbols = byte_symbols(clip)
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {}
    for token in vocab_list:
        vocab.setdefault(token, len(vocab))
    results = []
    for name, pad in (("sd1", "<|endoftext|>"), ("sd2", "!")):
        folder = os.path.join(OUT, name, "tokenizer")
        write_folder(folder, vocab, merges, pad)
        tokenizer = clip.CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"),
                                       pad_token=pad, model_max_length=MAX_LENGTH)
        if tokenizer.fix_text is not None:
            raise SystemExit("ftfy is importable: these fixtures are made on CLIPTokenizer's BasicTokenizer path")
        results.append([(tokenizer.tokenize(p), tokenizer(p, max_length=MAX_LENGTH)) for p in cases])
    out = []
    for prompt, (tokens1, enc1), (tokens2, enc2) in zip(cases, *results):
        out.append({"prompt": prompt, "tokens_sd1": tokens1, "ids_sd1": enc1["input_ids"],
                    "tokens_sd2": tokens2, "ids_sd2": enc2["input_ids"], "truncated": enc1["truncated"]})
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        f.write('{"source": "transformers CLIPTokenizer (tokenization_clip.py, BasicTokenizer path)", '
                f'"max_length": {MAX_LENGTH}, "cases": [\n')
        f.write(",\n".join(json.dumps(c, ensure_ascii=True) for c in out) + "\n]}\n")
    print(f"{len(out)} prompts, {len(vocab)} tokens, {len(merges)} merges, "
          f"{sum(c['truncated'] for c in out)} truncated -> {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()

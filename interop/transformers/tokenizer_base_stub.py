"""What transformers' CLIPTokenizer (models/clip/tokenization_clip.py, run as published) needs of the rest of
transformers, without the rest of transformers (too large to bring here, and its imports need packages Debian 12 lacks):

- the character-class helpers `_is_control`, `_is_punctuation`, `_is_whitespace`, taken from the real
  tokenization_utils.py by parsing it and running only those three function definitions;
- `AddedToken` and a `PreTrainedTokenizer` base written here from the base class's documented behaviour since
  transformers 4.34: every special token (bos, eos, unk, pad) is a no-split token found case-sensitively before
  `_tokenize` runs on the text between them (so SD 2.x's pad token "!" is always its own id 0, as in
  huggingface/diffusers#4153); `tokenizer(text, padding="max_length", max_length=77, truncation=True)` keeps the first
  max_length − 2 tokens, wraps them in bos … eos and pads on the right with the pad token's id.

`install(transformers_src)` registers a `transformers` package whose `models.clip.tokenization_clip` is the real file.
"""
import ast
import importlib.util
import logging
import os
import sys
import types


class AddedToken:
    def __init__(self, content, single_word=False, lstrip=False, rstrip=False, normalized=True, special=False):
        self.content, self.single_word, self.lstrip, self.rstrip = content, single_word, lstrip, rstrip
        self.normalized, self.special = normalized, special

    def __str__(self):
        return self.content


class PreTrainedTokenizer:
    def __init__(self, unk_token=None, bos_token=None, eos_token=None, pad_token=None, model_max_length=77,
                 **kwargs):
        self.unk_token, self.bos_token = str(unk_token), str(bos_token)
        self.eos_token, self.pad_token = str(eos_token), str(pad_token)
        self.model_max_length = model_max_length
        self.added_tokens_encoder = {}
        # Special tokens are no-split tokens; the longest one wins where two begin at the same place.
        self.no_split = sorted({self.bos_token, self.eos_token, self.unk_token, self.pad_token}, key=len, reverse=True)

    @property
    def bos_token_id(self):
        return self._convert_token_to_id(self.bos_token)

    @property
    def eos_token_id(self):
        return self._convert_token_to_id(self.eos_token)

    @property
    def pad_token_id(self):
        return self._convert_token_to_id(self.pad_token)

    def _split_on_special(self, text):
        pieces, start, i = [], 0, 0
        while i < len(text):
            match = next((t for t in self.no_split if text.startswith(t, i)), None)
            if match is None:
                i += 1
                continue
            if i > start:
                pieces.append((text[start:i], False))
            pieces.append((match, True))
            i += len(match)
            start = i
        if start < len(text):
            pieces.append((text[start:], False))
        return pieces

    def tokenize(self, text):
        if not text.strip():
            return []
        tokens = []
        for piece, special in self._split_on_special(text):
            tokens.extend([piece] if special else self._tokenize(piece))
        return tokens

    def convert_tokens_to_ids(self, tokens):
        return [self._convert_token_to_id(t) for t in tokens]

    def __call__(self, text, padding="max_length", max_length=None, truncation=True):
        max_length = max_length or self.model_max_length
        ids = self.convert_tokens_to_ids(self.tokenize(text))
        truncated = len(ids) + 2 > max_length
        if truncation and truncated:
            ids = ids[: max_length - 2]
        ids = self.build_inputs_with_special_tokens(ids)
        if padding == "max_length":
            ids = ids + [self.pad_token_id] * (max_length - len(ids))
        return {"input_ids": ids, "truncated": truncated}


def _helpers(tokenization_utils_path):
    """The three character-class functions of the real tokenization_utils.py, and nothing else of it."""
    tree = ast.parse(open(tokenization_utils_path, encoding="utf-8").read())
    wanted = {"_is_whitespace", "_is_control", "_is_punctuation"}
    body = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted]
    missing = wanted - {n.name for n in body}
    if missing:
        raise SystemExit(f"{tokenization_utils_path}: no {', '.join(sorted(missing))}")
    namespace = {"unicodedata": __import__("unicodedata")}
    exec(compile(ast.Module(body=body, type_ignores=[]), tokenization_utils_path, "exec"), namespace)
    return {name: namespace[name] for name in wanted}


def install(transformers_src):
    """Registers the package; returns the real tokenization_clip module."""
    root = os.path.join(transformers_src, "transformers")
    clip_path = os.path.join(root, "models", "clip", "tokenization_clip.py")
    for path in (clip_path, os.path.join(root, "tokenization_utils.py")):
        if not os.path.isfile(path):
            raise SystemExit(f"--transformers: {path} does not exist")

    def package(name, path=None):
        module = types.ModuleType(name)
        module.__path__ = [path] if path else []
        sys.modules[name] = module
        return module

    package("transformers", root)
    package("transformers.models", os.path.join(root, "models"))
    package("transformers.models.clip", os.path.join(root, "models", "clip"))
    utils = package("transformers.utils")
    utils.logging = types.SimpleNamespace(get_logger=logging.getLogger)
    sys.modules["transformers.utils.logging"] = utils.logging
    tokenization_utils = types.ModuleType("transformers.tokenization_utils")
    tokenization_utils.AddedToken = AddedToken
    tokenization_utils.PreTrainedTokenizer = PreTrainedTokenizer
    for name, function in _helpers(os.path.join(root, "tokenization_utils.py")).items():
        setattr(tokenization_utils, name, function)
    sys.modules["transformers.tokenization_utils"] = tokenization_utils
    spec = importlib.util.spec_from_file_location("transformers.models.clip.tokenization_clip", clip_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module

"""Vocabulary pruning and position-table cutting of a fine-tuned model (heavy: torch + transformers).

The WordPiece embedding table (30,522 x 384 = 11.7M of all-MiniLM-L6-v2's 22.7M parameters) is
the largest tensor of a small encoder, and tweets use a small part of that vocabulary. Pruning
keeps:

* every token the corpus uses (the caller passes every English tweet of the training split,
  labelled or not, and the entity names the model is conditioned on), or only those it uses at
  least ``min_count`` times (rarer words then decompose into kept pieces),
* the special tokens (``[PAD]``, ``[UNK]``, ``[CLS]``, ``[SEP]``, ``[MASK]``),
* every single-character piece and its ``##`` form, so that any word still decomposes into
  pieces (greedy longest-match WordPiece, Wu et al., 2016) instead of falling to ``[UNK]``,

in the original order, so ``[PAD]`` stays id 0. The embedding rows are remapped and the pruned
``tokenizer.json`` is written with the ``tokenizers`` library (the normalizer, pre-tokenizer and
post-processor are kept; only ids change). A text whose original tokens were all kept gets the
same embeddings as before (tested as a property).

``textpruner`` (PyPI, 1.1) prunes vocabularies of Hugging Face models, but it writes only a
``vocab.txt`` (a slow tokenizer, not the ``tokenizer.json`` the device runtime reads), keeps no
single-character fallback, and saves a raw ``state_dict``; this module does the same remapping
for the fast tokenizer file.

Position embeddings are cut to ``max_seq_len`` rows: an exported model never sees a longer input.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgerep.device.tokenizer import TweetTokenizer
from edgerep.errors import ConfigError
from edgerep.io import atomic_directory
from edgerep.registry import MODEL_INFO_FILE, TOKENIZER_FILE


@dataclass(frozen=True)
class PrunedVocabulary:
    """Result of :func:`kept_token_ids`.

    Attributes:
        kept_ids: int64 [V'] original ids kept, ascending (new id i = ``kept_ids[i]``).
        original_size: V, the original vocabulary size.
        from_corpus: how many kept tokens the texts used (special and single-character pieces aside).
        texts: number of texts tokenized.
    """

    kept_ids: np.ndarray
    original_size: int
    from_corpus: int
    texts: int

    @property
    def size(self) -> int:
        return int(len(self.kept_ids))

    def remap(self) -> np.ndarray:
        """int64 [V]: original id -> pruned id, -1 for a dropped token."""
        out = np.full(self.original_size, -1, dtype=np.int64)
        out[self.kept_ids] = np.arange(len(self.kept_ids))
        return out


def _wordpiece(tokenizer_json: Path) -> dict:
    spec = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    model = spec.get("model", {})
    if model.get("type") != "WordPiece":
        raise ConfigError(
            f"{tokenizer_json}: vocabulary pruning needs a WordPiece tokenizer (BERT family), got {model.get('type')!r}; valid: WordPiece"
        )
    return spec


def kept_token_ids(
    tokenizer_json: str | os.PathLike, texts: Sequence[str], extra_words: Sequence[str] = (), min_count: int = 1
) -> PrunedVocabulary:
    """The token ids to keep for ``texts`` (see the module docstring).

    Args:
        tokenizer_json: the model's WordPiece ``tokenizer.json``.
        texts: tweets, normalized and tokenized as the device does (:class:`TweetTokenizer`).
        extra_words: more strings to keep the pieces of (entity names), whatever their count.
        min_count: keep a corpus token only when ``texts`` use it at least this often (1: every
            token used). A dropped word still decomposes into the kept pieces (at worst single
            characters), so the table shrinks without ``[UNK]``: on the RepLab 2013 training
            split's 35,979 English tweets, 20,897 tokens at 1, 16,774 at 2, 14,270 at 3.

    Raises:
        ConfigError: not a WordPiece tokenizer (the message names the type found), or
            ``min_count`` < 1.
    """
    if min_count < 1:
        raise ConfigError(f"min_count must be >= 1, got {min_count}")
    spec = _wordpiece(Path(tokenizer_json))
    vocab: dict[str, int] = spec["model"]["vocab"]
    prefix = spec["model"].get("continuing_subword_prefix", "##")
    tok = TweetTokenizer(tokenizer_json, 512)
    corpus_ids = tok.ids(list(texts))
    counts = np.bincount(np.concatenate(corpus_ids) if corpus_ids else np.zeros(0, np.int64), minlength=len(vocab))
    keep = counts[: len(vocab)] >= min_count
    for ids in tok.ids(list(extra_words)):
        keep[ids] = True
    from_corpus = int(keep.sum())
    for t in spec.get("added_tokens", []):
        keep[t["id"]] = True
    for token, i in vocab.items():
        core = token[len(prefix) :] if token.startswith(prefix) else token
        if len(core) == 1:
            keep[i] = True
            if (prefix + core) in vocab:
                keep[vocab[prefix + core]] = True
    return PrunedVocabulary(np.flatnonzero(keep).astype(np.int64), len(vocab), from_corpus, len(texts))


def write_pruned_tokenizer(tokenizer_json: str | os.PathLike, pruned: PrunedVocabulary, out_path: str | os.PathLike) -> Path:
    """Write the pruned ``tokenizer.json``: the vocabulary restricted to ``pruned.kept_ids`` and
    renumbered, and every id elsewhere in the file (added tokens, the post-processor's special
    tokens, padding) remapped. Loaded and saved by ``tokenizers`` so the file is one it accepts.

    Raises:
        ConfigError: not a WordPiece tokenizer, or a special token was not kept.
    """
    from tokenizers import Tokenizer

    spec = _wordpiece(Path(tokenizer_json))
    remap = pruned.remap()

    def new_id(old: int, what: str) -> int:
        if remap[old] < 0:
            raise ConfigError(f"{tokenizer_json}: {what} (id {old}) was pruned; it must be kept")
        return int(remap[old])

    spec["model"]["vocab"] = {t: new_id(i, t) for t, i in spec["model"]["vocab"].items() if remap[i] >= 0}
    for t in spec.get("added_tokens", []):
        t["id"] = new_id(t["id"], t["content"])
    post = spec.get("post_processor") or {}
    for name, special in (post.get("special_tokens") or {}).items():
        special["ids"] = [new_id(i, name) for i in special["ids"]]
    for key in ("cls", "sep"):  # BertProcessing stores [token, id] pairs
        if isinstance(post.get(key), list):
            post[key][1] = new_id(post[key][1], post[key][0])
    if spec.get("padding"):
        spec["padding"]["pad_id"] = new_id(spec["padding"]["pad_id"], "padding token")
    tokenizer = Tokenizer.from_str(json.dumps(spec))
    out_path = Path(out_path)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    tokenizer.save(str(tmp))
    os.replace(tmp, out_path)
    return out_path


def unk_rate(tokenizer_json: str | os.PathLike, texts: Sequence[str]) -> float:
    """Share of WordPiece tokens (special tokens excluded) that are ``[UNK]``, in [0, 1]."""
    tok = TweetTokenizer(tokenizer_json, 512)
    unk = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))["model"]["vocab"].get("[UNK]")
    ids = tok.ids(list(texts))
    total = sum(max(0, len(x) - 2) for x in ids)
    return float(sum(int((x[1:-1] == unk).sum()) for x in ids) / max(total, 1))


def prune_model(model, pruned: PrunedVocabulary | None, max_seq_len: int | None):
    """A copy of a BERT-family sequence classifier with the word-embedding rows of
    ``pruned.kept_ids`` (``[V', E]``) and the first ``max_seq_len`` position-embedding rows;
    ``None`` leaves that table as is. Other weights are shared bit for bit.

    Raises:
        ConfigError: ``max_seq_len`` larger than the model's position table.
    """
    import torch

    from edgerep.workstation.compress.prune import model_from_config

    config = model.config.__class__.from_dict(model.config.to_dict())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    emb_key = next(k for k in state if k.endswith("embeddings.word_embeddings.weight"))
    if pruned is not None:
        if state[emb_key].shape[0] != pruned.original_size:
            raise ConfigError(f"vocabulary of {pruned.original_size} tokens does not match the model's {state[emb_key].shape[0]} rows")
        state[emb_key] = state[emb_key][torch.from_numpy(pruned.kept_ids)].clone()
        config.vocab_size = pruned.size
    if max_seq_len is not None:
        pos_key = next((k for k in state if k.endswith("embeddings.position_embeddings.weight")), None)
        if pos_key is not None:
            if max_seq_len > state[pos_key].shape[0]:
                raise ConfigError(f"max_seq_len {max_seq_len} exceeds the model's {state[pos_key].shape[0]} positions")
            state[pos_key] = state[pos_key][:max_seq_len].clone()
            config.max_position_embeddings = max_seq_len
            for k in [k for k in state if k.endswith("embeddings.position_ids")]:
                state[k] = state[k][:, :max_seq_len].clone()
    out = model_from_config(config)  # the model's own feed-forward widths, per layer where they differ
    missing, unexpected = out.load_state_dict(state, strict=False)
    real_missing = [k for k in missing if not k.endswith("position_ids")]
    if real_missing or unexpected:
        raise ConfigError(f"pruned model does not match its weights: missing {real_missing[:3]}, unexpected {list(unexpected)[:3]}")
    return out.eval()


def prune_checkpoint(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    texts: Sequence[str],
    extra_words: Sequence[str] = (),
    cut_positions: bool = True,
    check_texts: Sequence[str] = (),
    min_count: int = 1,
) -> dict:
    """Prune a fine-tuned model directory (``edgerep train`` / ``edgerep distill`` output) into
    ``out_dir`` (written atomically): remapped weights, pruned ``tokenizer.json``, and
    ``edgerep_model.json`` with a ``vocabulary_pruning`` entry.

    Args:
        model_dir: fine-tuned model directory.
        out_dir: destination.
        texts: the corpus whose tokens are kept (every English tweet of the training split).
        extra_words: more strings whose pieces are kept (the entity names).
        cut_positions: also cut the position table to the model's ``max_seq_len``.
        check_texts: texts whose ``[UNK]`` rate is recorded before and after (e.g. validation
            tweets, or out-of-domain ones the corpus does not contain).
        min_count: keep corpus tokens used at least this often (:func:`kept_token_ids`).

    Returns:
        The ``vocabulary_pruning`` entry: original and kept sizes, tokens the corpus used,
        embedding parameters before and after, ``unk_rate`` before/after on ``check_texts``.

    Raises:
        ModelLoadError: not a fine-tuned model. ConfigError: not a WordPiece tokenizer.
    """
    from edgerep.workstation.models import load_finetuned

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    model, info = load_finetuned(model_dir)
    pruned = kept_token_ids(model_dir / TOKENIZER_FILE, texts, extra_words, min_count)
    small = prune_model(model, pruned, int(info["max_seq_len"]) if cut_positions else None)
    width = model.get_input_embeddings().weight.shape[1]
    entry = {
        "original_vocabulary": pruned.original_size,
        "kept_vocabulary": pruned.size,
        "kept_from_corpus": pruned.from_corpus,
        "min_count": min_count,
        "corpus_texts": pruned.texts,
        "embedding_parameters_before": pruned.original_size * width,
        "embedding_parameters_after": pruned.size * width,
        "position_rows": int(info["max_seq_len"]) if cut_positions else None,
        "source": str(model_dir),
    }
    with atomic_directory(out_dir, overwrite=True) as tmp:
        small.save_pretrained(tmp)
        write_pruned_tokenizer(model_dir / TOKENIZER_FILE, pruned, tmp / TOKENIZER_FILE)
        if check_texts:
            entry["unk_rate"] = {
                "texts": len(check_texts),
                "before": round(unk_rate(model_dir / TOKENIZER_FILE, check_texts), 6),
                "after": round(unk_rate(tmp / TOKENIZER_FILE, check_texts), 6),
            }
        if (model_dir / "tokenizer_config.json").is_file():
            shutil.copy2(model_dir / "tokenizer_config.json", tmp / "tokenizer_config.json")
        (tmp / MODEL_INFO_FILE).write_text(json.dumps({**info, "vocabulary_pruning": entry}, indent=2) + "\n")
    return entry


__all__ = ["PrunedVocabulary", "kept_token_ids", "write_pruned_tokenizer", "unk_rate", "prune_model", "prune_checkpoint"]

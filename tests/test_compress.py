"""Compression (issue: compress past the paper's 160x): vocabulary pruning, distillation into a
shallower student, mixed-precision recipes, ``edgerep compress`` and the MobileBERT path.

Real data everywhere: the RepLab 2013 training split's tweets and the MiniLM WordPiece
tokenizer; models are the tiny seeded BERT of conftest (trained by the real code) and a tiny
MobileBERT built from its published config.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Interrupted, interrupt_after_epoch_1, interrupt_at_step, make_tiny_pretrained, run_cli
from edgerep.errors import ConfigError, DataError, ModelLoadError


@pytest.fixture(scope="module")
def corpus(data_root):
    """Every English tweet text of the training split and the entity names (the pruning corpus)."""
    from edgerep.data.replab import entity_names, load_texts

    return [r.text for r in load_texts(data_root, "training")[0]], sorted(set(entity_names(data_root).values()))


@pytest.fixture(scope="module")
def minilm_tokenizer() -> Path:
    from edgerep.data.stats import default_tokenizer_json

    return default_tokenizer_json()


@pytest.fixture(scope="module")
def pruned_tokenizer(tmp_path_factory, minilm_tokenizer, corpus):
    from edgerep.workstation.compress.vocab import kept_token_ids, write_pruned_tokenizer

    texts, names = corpus
    pv = kept_token_ids(minilm_tokenizer, texts, names)
    path = write_pruned_tokenizer(minilm_tokenizer, pv, tmp_path_factory.mktemp("pruned-tok") / "tokenizer.json")
    return pv, path


# ----------------------------------------------------------------------------- vocabulary pruning


def test_kept_vocabulary_covers_corpus_specials_and_characters(pruned_tokenizer, minilm_tokenizer, corpus):
    from edgerep.device.tokenizer import TweetTokenizer

    pv, path = pruned_tokenizer
    vocab = json.loads(Path(minilm_tokenizer).read_text())["model"]["vocab"]
    kept = set(pv.kept_ids.tolist())
    assert 10_000 < pv.size < pv.original_size == 30522
    assert all(vocab[t] in kept for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##a", "z", "##z", "7", "##7"))
    assert all(i in kept for t, i in vocab.items() if len(t.removeprefix("##")) == 1)
    # every corpus tweet tokenizes to the same pieces, renumbered
    remap = pv.remap()
    orig, new = TweetTokenizer(minilm_tokenizer, 64), TweetTokenizer(path, 64)
    sample = corpus[0][::50]
    for a, b in zip(orig.ids(sample), new.ids(sample)):
        assert np.array_equal(remap[a], b)
    assert new.pad_id == 0 and new.sep_id == remap[orig.sep_id]


def test_min_count_drops_rare_tokens_without_unknowns(tmp_path, pruned_tokenizer, minilm_tokenizer, corpus):
    """min_count=3 keeps only corpus tokens used >= 3 times (plus specials, single characters and
    the entity names' pieces): a smaller table, and the corpus itself gets no new [UNK] (rare
    words decompose into kept pieces); min_count 0 is refused."""
    from edgerep.device.tokenizer import TweetTokenizer
    from edgerep.workstation.compress.vocab import kept_token_ids, write_pruned_tokenizer

    texts, names = corpus
    every, _ = pruned_tokenizer
    pv = kept_token_ids(minilm_tokenizer, texts, names, min_count=3)
    assert 10_000 < pv.size < every.size - 5_000
    orig = TweetTokenizer(minilm_tokenizer, 128)
    counts = np.bincount(np.concatenate(orig.ids(texts)), minlength=pv.original_size)
    kept = np.zeros(pv.original_size, bool)
    kept[pv.kept_ids] = True
    name_ids = np.concatenate(orig.ids(names))
    vocab = json.loads(Path(minilm_tokenizer).read_text())["model"]["vocab"]
    single = np.zeros(pv.original_size, bool)
    single[[i for t, i in vocab.items() if len(t.removeprefix("##")) == 1]] = True
    rare_kept = kept & (counts < 3) & ~single
    rare_kept[name_ids] = False
    rare_kept[:1000] = False  # [PAD], [UNK], [CLS], [SEP], [MASK] and the unused slots
    assert not rare_kept.any() and kept[counts >= 3].all() and kept[name_ids].all()
    path = write_pruned_tokenizer(minilm_tokenizer, pv, tmp_path / "tokenizer.json")
    sample = texts[::20]
    unk_new = TweetTokenizer(path, 128).ids(sample)
    unk_id = int(pv.remap()[100])
    assert sum(int((x == unk_id).sum()) for x in unk_new) <= sum(int((x == 100).sum()) for x in orig.ids(sample))
    with pytest.raises(ConfigError, match="min_count must be >= 1"):
        kept_token_ids(minilm_tokenizer, texts[:10], min_count=0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.sampled_from(["bmw", "audi", "bank", "lost", "great", "#music", "@user", "http://t.co/x", "ünïcødé",
                                       "qzxv", "hyperloop", "😀", "日本", "supercalifragilistic", "!!", "42"]), min_size=1, max_size=12),
       noise=st.text(min_size=0, max_size=12))
def test_pruned_tokenizer_matches_wherever_tokens_were_kept(pruned_tokenizer, minilm_tokenizer, words, noise):
    """Property: for any text, the pruned tokenizer gives the remapped original ids when every
    original token was kept; otherwise every word still decomposes (no more [UNK] than before)."""
    from edgerep.device.tokenizer import TweetTokenizer

    pv, path = pruned_tokenizer
    text = " ".join(words) + " " + noise
    if not text.strip():
        return
    remap = pv.remap()
    a = TweetTokenizer(minilm_tokenizer, 128).ids([text])[0]
    b = TweetTokenizer(path, 128).ids([text])[0]
    unk_a, unk_b = 100, int(remap[100])
    if (remap[a] >= 0).all():
        assert np.array_equal(remap[a], b)
    else:
        assert int((b == unk_b).sum()) <= int((a == unk_a).sum()) + len(text.split())
        assert len(b) >= len(a)  # dropped pieces split into smaller kept ones


@pytest.mark.usefixtures("tiny_entity_model")
def test_pruned_model_gives_the_same_logits(tiny_entity_model, tmp_path, corpus, data_root):
    """Pruned checkpoint + pruned tokenizer = original logits on real tweets with their entities
    (kept rows are copied bit for bit), with fewer embedding rows and a position table cut to
    max_seq_len."""
    from edgerep.data import sample_texts
    from edgerep.device.tokenizer import TweetTokenizer
    from edgerep.workstation.compress.vocab import prune_checkpoint
    from edgerep.workstation.inference import torch_logits
    from edgerep.workstation.models import load_finetuned

    texts, names = corpus
    entry = prune_checkpoint(tiny_entity_model, tmp_path / "pruned", texts, names)
    tweets = sample_texts(data_root, "validation", 200)
    m0, info = load_finetuned(tiny_entity_model)
    m1, info1 = load_finetuned(tmp_path / "pruned")
    L = int(info["max_seq_len"])
    l0 = torch_logits(m0, TweetTokenizer(tiny_entity_model / "tokenizer.json", L, True), tweets.texts, entities=tweets.entities)
    l1 = torch_logits(m1, TweetTokenizer(tmp_path / "pruned" / "tokenizer.json", L, True), tweets.texts, entities=tweets.entities)
    np.testing.assert_allclose(l0, l1, atol=1e-5)
    assert m1.config.vocab_size == entry["kept_vocabulary"] < 30522
    assert m1.bert.embeddings.position_embeddings.weight.shape[0] == L == entry["position_rows"]
    assert info1["vocabulary_pruning"]["embedding_parameters_after"] < info1["vocabulary_pruning"]["embedding_parameters_before"]


def test_pruning_refuses_a_non_wordpiece_tokenizer(tmp_path, minilm_tokenizer):
    from edgerep.workstation.compress.vocab import kept_token_ids

    spec = json.loads(Path(minilm_tokenizer).read_text())
    spec["model"] = {"type": "BPE", "vocab": {"a": 0}, "merges": []}
    bad = tmp_path / "tokenizer.json"
    bad.write_text(json.dumps(spec))
    with pytest.raises(ConfigError, match="WordPiece.*got 'BPE'"):
        kept_token_ids(bad, ["hello"])


def test_unk_rate_counts_unknown_pieces(minilm_tokenizer):
    from edgerep.workstation.compress.vocab import unk_rate

    assert unk_rate(minilm_tokenizer, ["bmw is great"]) == 0.0
    assert 0 < unk_rate(minilm_tokenizer, ["bmw \u2fd5 great"]) < 1  # a Kangxi radical outside the vocabulary


# ----------------------------------------------------------------------------- distillation


def test_student_layer_map():
    from edgerep.workstation.compress.distill import student_layer_map

    assert student_layer_map(6, 2) == [0, 5]
    assert student_layer_map(6, 3) == [0, 2, 5]
    assert student_layer_map(6, 6) == list(range(6))
    assert student_layer_map(24, 1) == [23]
    with pytest.raises(ConfigError, match="must be in 1..6"):
        student_layer_map(6, 7)


def test_soft_targets_and_loss():
    import torch

    from edgerep.workstation.compress.distill import distillation_loss, soft_targets

    logits = np.array([[[2.0, 0.0, -2.0]], [[0.0, 0.0, 0.0]]], dtype=np.float32)  # two teachers, one tweet
    p = soft_targets(logits, 1.0)
    e = np.exp([2.0, 0.0, -2.0])
    np.testing.assert_allclose(p[0], (e / e.sum() + 1 / 3) / 2, rtol=1e-6)
    t = torch.from_numpy(p)
    # a student equal to the target has zero KL; the CE term applies to labelled rows only
    student = torch.log(t) * 1.0
    assert float(distillation_loss(student, t, torch.tensor([-1]), 1.0, 0.5)) == pytest.approx(0.0, abs=1e-6)
    assert float(distillation_loss(student, t, torch.tensor([0]), 1.0, 0.0)) == pytest.approx(-float(torch.log_softmax(student, -1)[0, 0]))


def test_hidden_state_loss_counts_real_tokens_of_mapped_layers():
    """MSE between student layer i and teacher layer mapping[i] outputs, padding ignored."""
    import torch

    from edgerep.workstation.compress.distill import hidden_state_loss

    emb = torch.zeros(1, 3, 2)
    teacher = (emb, torch.ones(1, 3, 2), torch.full((1, 3, 2), 2.0), torch.full((1, 3, 2), 5.0))
    mask = torch.tensor([[1, 1, 0]])
    student = (emb, torch.full((1, 3, 2), 2.0))  # one layer copied from teacher layer 1
    assert float(hidden_state_loss(student, teacher, [1], mask)) == 0.0
    assert float(hidden_state_loss(student, teacher, [2], mask)) == pytest.approx(9.0)
    padded = (emb, torch.tensor([[[2.0, 2.0], [2.0, 2.0], [100.0, 100.0]]]))  # the pad position differs
    assert float(hidden_state_loss(padded, teacher, [1], mask)) == 0.0
    two = (emb, torch.full((1, 3, 2), 2.0), torch.full((1, 3, 2), 4.0))
    assert float(hidden_state_loss(two, teacher, [1, 2], mask)) == pytest.approx((0.0 + 1.0) / 2)


def test_distill_with_hidden_state_term(tiny_entity_model, data_root, tmp_path):
    """The hidden-state term trains and is recorded, with the teacher's states cached; a
    negative weight is refused."""
    from edgerep.workstation.compress.distill import DistillConfig, distill
    from edgerep.workstation.models import load_finetuned

    with pytest.raises(ConfigError, match="hidden_weight must be >= 0"):
        DistillConfig(teachers=(str(tiny_entity_model),), hidden_weight=-1.0)
    cfg = DistillConfig(teachers=(str(tiny_entity_model),), layers=1, epochs=1, limit=96, batch_size=32, hidden_weight=1.0)
    _, info = load_finetuned(distill(data_root, tmp_path / "hidden", cfg))
    assert info["distillation"]["hidden_weight"] == 1.0 and np.isfinite(info["validation"]["accuracy"])
    assert info["distillation"]["teacher_states"] == "cached, float16"


def test_cached_teacher_states_are_the_teachers_hidden_states(tiny_entity_model, data_root):
    """One length-sorted teacher pass gives the logits of :func:`ids_logits` and, for a training
    batch padded as the student sees it, the teacher's own hidden states of the mapped layers
    at every real token (float16 rounding) and zeros on padding (real validation tweets)."""
    import torch

    from edgerep.data import sample_texts
    from edgerep.device.tokenizer import TweetTokenizer
    from edgerep.workstation.compress.distill import TeacherStates, teacher_pass
    from edgerep.workstation.inference import ids_logits, model_inputs
    from edgerep.workstation.models import load_finetuned

    model, info = load_finetuned(tiny_entity_model)
    tok = TweetTokenizer(tiny_entity_model / "tokenizer.json", int(info["max_seq_len"]), True)
    tweets = sample_texts(data_root, "validation", 90)
    ids = tok.ids(tweets.texts, tweets.entities)
    logits, states = teacher_pass(model, tok, ids, [0, 1], batch_size=16)
    np.testing.assert_allclose(logits, ids_logits(model, tok, ids), atol=1e-5)
    assert states.values.dtype == np.float16 and states.values.shape == (2, sum(len(x) for x in ids), model.config.hidden_size)
    assert states.values.nbytes == TeacherStates.nbytes(ids, 2, model.config.hidden_size)
    batch = [5, 41, 0, 77]
    enc = tok.pad([ids[i] for i in batch])
    with torch.no_grad():
        hidden = model(**model_inputs(model, enc), output_hidden_states=True).hidden_states
    targets = states.batch(batch, enc.input_ids.shape[1])
    mask = torch.from_numpy(enc.attention_mask).bool()
    assert len(targets) == 2 and not mask.all()
    for target, layer in zip(targets, (0, 1)):
        assert target.dtype == torch.float32 and target.shape == hidden[layer + 1].shape
        torch.testing.assert_close(target[mask], hidden[layer + 1][mask], atol=2e-2, rtol=2e-3)
        assert torch.count_nonzero(target[~mask]) == 0


def test_quantized_call_looks_up_grid_rows_only(tiny_entity_model, data_root):
    """Rounding only the looked-up embedding rows gives the logits and the gradients of
    rounding the whole table (real validation tweets, dynamic-int4 and dynamic-int8-emb4 grids)."""
    import torch

    from edgerep.data import sample_texts
    from edgerep.device.tokenizer import TweetTokenizer
    from edgerep.registry import Quantization
    from edgerep.workstation.compress.qat import fake_quantized_call, fake_quantized_parameters, quantized_weights
    from edgerep.workstation.inference import model_inputs
    from edgerep.workstation.models import load_finetuned

    model, info = load_finetuned(tiny_entity_model)
    model.eval()  # no dropout: the two passes must see the same network
    tok = TweetTokenizer(tiny_entity_model / "tokenizer.json", int(info["max_seq_len"]), True)
    tweets = sample_texts(data_root, "validation", 24)
    inputs = model_inputs(model, tok.encode(tweets.texts, entities=tweets.entities))
    for mode in (Quantization.DYNAMIC_INT4, Quantization.DYNAMIC_INT8_EMB4):
        grids = quantized_weights(model, mode)
        results = []
        for call in (lambda: fake_quantized_call(model, grids, inputs),
                     lambda: torch.func.functional_call(model, fake_quantized_parameters(model, grids), args=(), kwargs=inputs)):
            model.zero_grad()
            logits = call().logits
            (logits ** 2).sum().backward()
            results.append((logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
        (a, ga), (b, gb) = results
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
        assert ga.keys() == gb.keys() and "bert.embeddings.word_embeddings.weight" in ga
        for name in ga:
            torch.testing.assert_close(ga[name], gb[name], atol=1e-5, rtol=1e-4, msg=name)
        assert "input_ids" in inputs  # the caller's inputs are left as they were


def test_fake_quantize_is_the_converters_per_row_symmetric_grid(tiny_entity_model):
    """Every row of a real weight lands on ``k * max|row| / qmax`` with k in the signed range
    (narrow at 8 bits); the gradient passes straight through; snapping twice changes nothing."""
    import torch

    from edgerep.workstation.compress.qat import fake_quantize, quantized_weights, snap_to_grid
    from edgerep.workstation.models import load_finetuned
    from edgerep.registry import Quantization

    model, _ = load_finetuned(tiny_entity_model)
    w = model.bert.embeddings.word_embeddings.weight.detach().clone()
    for bits, lo, hi in ((4, -8, 7), (8, -127, 127)):
        q = fake_quantize(w, bits)
        scale = w.abs().amax(1, keepdim=True).clamp_min(1e-9) / hi  # the padding row is all zeros
        k = q / scale
        assert torch.allclose(k, k.round(), atol=1e-3) and k.min() >= lo - 1e-3 and k.max() <= hi + 1e-3
        assert torch.allclose(q.abs().amax(1), w.abs().amax(1), rtol=1e-6)  # the row maximum is kept exactly
        assert (q - w).abs().max() <= scale.max() / 2 + 1e-6
    x = w.clone().requires_grad_(True)
    fake_quantize(x, 4).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # straight-through estimator
    grids = quantized_weights(model, Quantization.DYNAMIC_INT8_EMB4)
    assert grids["bert.embeddings.word_embeddings.weight"].bits == 4 and grids["classifier.weight"].bits == 8
    assert grids["bert.encoder.layer.0.attention.self.query.weight"].bits == 8 and len(grids) == 2 + 6 * 2 + 1
    once = {k: v.clone() for k, v in snap_to_grid(model, grids).state_dict().items()}
    for k, v in snap_to_grid(model, grids).state_dict().items():
        assert torch.allclose(v, once[k], atol=1e-7), k


def test_fold_aware_grid_is_the_grid_of_the_folded_weight(tiny_entity_model):
    """The converter quantizes ``W diag(gamma)`` for query/key/value (gamma of the LayerNorm
    before them) and the feed-forward input (gamma of the attention-output LayerNorm): after
    snapping, exactly those products lie on the per-row grid, the other weights on the plain one."""
    import torch

    from edgerep.workstation.compress.qat import folded_scales, quantized_weights, snap_to_grid
    from edgerep.workstation.models import load_finetuned
    from edgerep.registry import Quantization

    model, _ = load_finetuned(tiny_entity_model)
    layers = model.config.num_hidden_layers
    folds = folded_scales(model)
    assert len(folds) == 4 * layers
    assert folds["bert.encoder.layer.0.attention.self.key.weight"] == "bert.embeddings.LayerNorm.weight"
    assert folds["bert.encoder.layer.1.attention.self.value.weight"] == "bert.encoder.layer.0.output.LayerNorm.weight"
    assert folds["bert.encoder.layer.1.intermediate.dense.weight"] == "bert.encoder.layer.1.attention.output.LayerNorm.weight"
    with torch.no_grad():  # a fine-tuned tiny model's gammas are near 1; make the fold matter
        for name in set(folds.values()):
            dict(model.named_parameters())[name].mul_(torch.linspace(0.3, 2.0, model.config.hidden_size))
    grids = quantized_weights(model, Quantization.DYNAMIC_INT4)
    snap_to_grid(model, grids)
    params = dict(model.named_parameters())

    def on_grid(w):
        k = w / (w.abs().amax(1, keepdim=True).clamp_min(1e-9) / 7)
        return torch.allclose(k, k.round(), atol=1e-3)

    for name, grid in grids.items():
        w = params[name].detach()
        if grid.folded_scale:
            folded = w * params[grid.folded_scale].detach()
            assert on_grid(folded) and not on_grid(w), name
        else:
            assert on_grid(w), name


def test_quant_aware_student_survives_int4_export(tiny_entity_model, data_root, tmp_path):
    """A student distilled with the dynamic-int4 grid is exported with that recipe with a
    several-fold smaller logit error than the same student trained in float32 (real validation
    tweets); its weights are on the grid; an unknown mode is one error listing the valid ones."""
    from edgerep.data import sample_texts
    from edgerep.registry import Quantization
    from edgerep.workstation.compress.distill import DistillConfig, distill
    from edgerep.workstation.export import export_bundles
    from edgerep.workstation.models import load_finetuned

    with pytest.raises(ConfigError, match="valid: none, dynamic-int8, dynamic-int8-emb4, dynamic-int4"):
        DistillConfig(teachers=(str(tiny_entity_model),), quant_aware="int3")
    tweets = sample_texts(data_root, "validation", 120)
    error, dirs = {}, {}
    for name, mode in (("plain", None), ("qat", "dynamic-int4")):
        cfg = DistillConfig(teachers=(str(tiny_entity_model),), layers=1, epochs=1, limit=96, batch_size=32, quant_aware=mode)
        model_dir = dirs[name] = distill(data_root, tmp_path / name, cfg)
        [result] = export_bundles(model_dir, tmp_path / f"{name}-bundles", [Quantization.DYNAMIC_INT4], tweets)
        error[name] = json.loads((Path(result.path) / "manifest.json").read_text())["validation"]["mean_abs_logit_diff"]
        _, info = load_finetuned(model_dir)
        assert info["distillation"]["quant_aware"] == mode
    assert not (tmp_path / "qat" / "snapped").exists()
    assert error["qat"] * 3 < error["plain"], error
    # the [CLS]-only last layer (the default graph) keeps the folded weights on the grid: the
    # full graph of the same student is no closer to PyTorch
    [full] = export_bundles(dirs["qat"], tmp_path / "qat-full", [Quantization.DYNAMIC_INT4], tweets, cls_only=False)
    assert error["qat"] <= full.validation["mean_abs_logit_diff"] * 1.1 + 1e-4, (error, full.validation)


def test_init_student_copies_evenly_spaced_layers(tiny_entity_model):
    import torch

    from edgerep.workstation.compress.distill import init_student
    from edgerep.workstation.models import load_finetuned

    teacher, _ = load_finetuned(tiny_entity_model)
    student, mapping = init_student(teacher, 1)
    assert mapping == [1] and student.config.num_hidden_layers == 1
    assert torch.equal(student.bert.encoder.layer[0].attention.self.query.weight, teacher.bert.encoder.layer[1].attention.self.query.weight)
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)


def test_distill_resumes_after_interruption(tiny_entity_model, data_root, tmp_path, monkeypatch):
    """An interrupted distillation resumes from the last finished epoch and ends with the same
    student as an uninterrupted one; the student is a fine-tuned model directory."""
    import torch

    from edgerep.workstation.compress.distill import DistillConfig, distill
    from edgerep.workstation.models import load_finetuned

    cfg = DistillConfig(teachers=(str(tiny_entity_model),), layers=1, epochs=2, limit=160, batch_size=32)
    full = distill(data_root, tmp_path / "full", cfg)
    with interrupt_after_epoch_1(monkeypatch), pytest.raises(Interrupted):
        distill(data_root, tmp_path / "resumed", cfg)
    resumed = distill(data_root, tmp_path / "resumed", cfg)
    a, info = load_finetuned(full)
    b, _ = load_finetuned(resumed)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(v, w, atol=1e-6), k
    d = info["distillation"]
    assert d["layers"] == 1 and d["teacher_layers"] == 2 and d["transfer"]["unlabelled"] > 0
    assert d["transfer"]["validation_left_out"] > 0 and info["entity_conditioned"] is True


def test_distill_resumes_inside_an_epoch_through_a_pruning_cut(tiny_entity_model, data_root, tmp_path, monkeypatch):
    """A mid-epoch checkpoint after every batch; interrupted inside epoch 1 (full width) and
    inside epoch 2 (after the feed-forward cut and the optimizer's restart), the resumed
    quantization-aware distillations end with the uninterrupted student and history."""
    import torch

    from edgerep.workstation.compress.distill import DistillConfig, distill
    from edgerep.workstation.models import load_finetuned

    cfg = DistillConfig(
        teachers=(str(tiny_entity_model),), layers=1, epochs=2, limit=96, batch_size=32, hidden_weight=1.0,
        quant_aware="dynamic-int4", ffn_width=32, prune_after_epoch=1,
    )
    full = distill(data_root, tmp_path / "full", cfg, checkpoint_minutes=None)
    a, _ = load_finetuned(full)
    history = json.loads((tmp_path / "full" / "history.json").read_text())
    steps = 3  # optimizer steps an epoch: 96 transfer tweets, 32 a batch
    for run, (stop_epoch, stop_batch) in {"e1": (1, 2), "e2": (2, 1)}.items():
        with interrupt_at_step(monkeypatch, (stop_epoch - 1) * steps + stop_batch + 1), pytest.raises(Interrupted):
            distill(data_root, tmp_path / run, cfg, checkpoint_minutes=0)
        state = json.loads((tmp_path / run / "checkpoints" / "mid-epoch" / "state.json").read_text())
        assert (state["epoch"], state["batches_done"]) == (stop_epoch, stop_batch)
        b, info = load_finetuned(distill(data_root, tmp_path / run, cfg, checkpoint_minutes=0))
        assert info["distillation"]["ffn_width"] == 32 and not (tmp_path / run / "checkpoints" / "mid-epoch").exists()
        for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.allclose(v, w, atol=1e-6), f"{run}: {k}"
        resumed = json.loads((tmp_path / run / "history.json").read_text())
        assert [h["validation"] for h in resumed] == [h["validation"] for h in history]


def test_distill_bad_input_is_one_clear_error(tiny_entity_model, data_root, tmp_path):
    from edgerep.workstation.compress.distill import DistillConfig, distill

    with pytest.raises(ConfigError, match="student layers 3: must be in 1..2"):
        distill(data_root, tmp_path / "deep", DistillConfig(teachers=(str(tiny_entity_model),), layers=3))
    assert not (tmp_path / "deep").exists()
    with pytest.raises(ModelLoadError, match="not an edgerep fine-tuned model"):
        distill(data_root, tmp_path / "bad", DistillConfig(teachers=(str(tmp_path),), layers=1))
    assert not (tmp_path / "bad").exists()
    r = run_cli("distill", "--data", str(data_root), "--teacher", str(tmp_path / "nope"), "--out", str(tmp_path / "x"))
    assert r.returncode == 1 and r.stderr.decode().startswith("error:") and b"Traceback" not in r.stderr


# ----------------------------------------------------------------------------- recipes and compress


def test_mixed_precision_recipes_are_registered():
    from edgerep.registry import RECIPES, Quantization, parse_quantizations

    assert parse_quantizations("dynamic-int8-emb4,dynamic-int4") == [Quantization.DYNAMIC_INT8_EMB4, Quantization.DYNAMIC_INT4]
    assert RECIPES[Quantization.DYNAMIC_INT4].recipe == "dynamic_wi4_afp32"
    with pytest.raises(ConfigError, match="valid: fp32"):
        parse_quantizations("int3")


def test_compress_builds_validates_times_and_recommends(tiny_entity_model, data_root, tmp_path):
    """`edgerep compress` on a run: a 1-layer quantization-aware student at the teacher's
    feed-forward width and one pruned to 16 units, and the teacher, vocabulary-pruned (tokens
    used twice or more), each
    with two recipes and ONNX Runtime int8; every bundle validated and evaluated, one bench run,
    a Pareto record, the recommended bundle installed, and a report section."""
    from edgerep.app.compress import CompressConfig, compress
    from edgerep.app.report import build_report
    from edgerep.device.runtime import PolarityClassifier
    from edgerep.measure.records import read_record
    from edgerep.registry import Quantization

    run = tmp_path / "run"
    shutil.copytree(tiny_entity_model, run / "train" / "model")
    cfg = CompressConfig(layers=(1,), quantizations=(Quantization.DYNAMIC_INT8, Quantization.DYNAMIC_INT4), epochs=1, limit=120,
                         latency_tweets=10, accuracy_budget=0.5, quant_aware="dynamic-int4", vocab_min_count=2, ffn_widths=(64, 16))
    rec = compress(data_root, run, cfg)
    assert rec["models"]["k1-pruned"]["distillation"]["quant_aware"] == "dynamic-int4"
    assert rec["models"]["k1-pruned"]["ffn_width"] == 64 and rec["models"]["k1-f16-pruned"]["ffn_width"] == 16
    narrow = next(r for r in rec["rows"] if r["variant"] == "k1-f16-pruned/dynamic-int4")
    assert narrow["ffn_width"] == 16 and narrow["layers"] == 1 and narrow["latency_p50_ms"] > 0
    pruning = rec["models"]["teacher-pruned"]["vocabulary_pruning"]
    assert pruning["min_count"] == 2 and pruning["kept_vocabulary"] < 18_000
    variants = {r["variant"] for r in rec["rows"]}
    assert {"teacher-pruned/dynamic-int4", "k1-pruned/dynamic-int8", "k1-pruned/dynamic-int4",
            "k1-pruned/onnx-dynamic-int8", "k1-pruned/onnx-dynamic-int8-same-graph", "k1-pruned/pytorch", "teacher-pruned/pytorch"} <= variants
    assert {v for v in variants if v.startswith("teacher-pruned/")} == {"teacher-pruned/dynamic-int4", "teacher-pruned/pytorch"}  # the fallback recipe only
    litert = [r for r in rec["rows"] if r["backend"] == "litert"]
    assert all(r["latency_p50_ms"] > 0 and r["throughput_tweets_per_s"] > 0 and r["peak_rss_mb"] > 0 for r in litert)
    assert all("speedup_vs_transformers" in r for r in litert)
    assert any(r.get("pareto") for r in litert)
    # each variant against the run's float32 model on the same validation tweets, with a paired bootstrap interval
    ref = rec["reference"]
    for r in rec["rows"]:
        vs = r["vs_reference"]
        assert vs["macro_f1"]["diff"] == pytest.approx(r["macro_f1"] - ref["macro_f1"])
        assert vs["accuracy"]["diff"] == pytest.approx(r["accuracy"] - ref["accuracy"])
        assert vs["macro_f1"]["low"] <= vs["macro_f1"]["high"]
    k1 = {r["quantization"]: r for r in rec["rows"] if r["model"] == "k1-pruned"}
    assert k1["dynamic-int4"]["size_mb"] < k1["dynamic-int8"]["size_mb"]
    assert "speedup_vs_onnxruntime_int8" in k1["dynamic-int8"] and "speedup_vs_onnxruntime_int8_same_graph" in k1["dynamic-int8"]
    graphs = {q: json.loads((Path(r["path"]) / "manifest.json").read_text())["source"]["graph"] for q, r in k1.items() if q != "pytorch"}
    assert graphs == {"dynamic-int8": "cls-only-last-layer", "dynamic-int4": "cls-only-last-layer", "onnx-dynamic-int8": "full",
                      "onnx-dynamic-int8-same-graph": "cls-only-last-layer"}
    teacher = {r["quantization"]: r for r in rec["rows"] if r["model"] == "teacher-pruned"}
    assert k1["dynamic-int4"]["size_mb"] < teacher["dynamic-int4"]["size_mb"]
    # the recommendation follows the rule, is installed and named in the record
    chosen = rec["recommended"]
    assert chosen is not None and (run / "bundles" / "recommended" / "manifest.json").is_file()
    clf = PolarityClassifier(run / "bundles" / "recommended")
    assert clf.classify("BMW recalls thousands of cars", entity="BMW").label in ("POSITIVE", "NEUTRAL", "NEGATIVE")
    assert read_record(run / "compress" / "compression.json", "compression")["recommended"]["variant"] == chosen["variant"]
    # a second call keeps every artifact and gives the same record rows
    again = compress(data_root, run, cfg)
    assert [r["variant"] for r in again["rows"]] == [r["variant"] for r in rec["rows"]]
    # a run directory moved elsewhere resumes there: its kept evaluations point at the bundles where they are now
    moved = tmp_path / "moved"
    shutil.move(run, moved)
    (moved / "compress" / "compression.json").unlink()
    shutil.rmtree(moved / "bundles" / "recommended")
    again = compress(data_root, moved, cfg)
    assert all(Path(r["path"]).is_relative_to(moved) for r in again["rows"])
    assert Path(again["recommended"]["path"]).is_relative_to(moved) and (moved / "bundles" / "recommended" / "manifest.json").is_file()
    chosen = again["recommended"]  # timed again (the bench keys its cells by path): the fastest may differ
    run = moved
    rep = build_report([run], tmp_path / "report")
    md = Path(rep["markdown"]).read_text()
    assert "Compression: distilled students" in md and chosen["variant"] in md
    assert any(p.name.startswith("compression-") for p in (tmp_path / "report" / "figures").iterdir())


def test_compress_bad_input(tiny_entity_model, data_root, tmp_path):
    from edgerep.app.compress import CompressConfig, compress

    with pytest.raises(ModelLoadError, match="no fine-tuned model"):
        compress(data_root, tmp_path, CompressConfig(layers=(1,)))
    run = tmp_path / "run"
    shutil.copytree(tiny_entity_model, run / "train" / "model")
    with pytest.raises(ConfigError, match="student layers 5: must be in 1..2"):
        compress(data_root, run, CompressConfig(layers=(5,)))
    with pytest.raises(DataError):
        compress(tmp_path / "no-corpus", run, CompressConfig(layers=(1,)))
    with pytest.raises(ConfigError, match="feed-forward width 65: needs a BERT-style teacher"):
        compress(data_root, run, CompressConfig(layers=(1,), ffn_widths=(64, 65)))
    assert not (run / "compress").exists()
    r = run_cli("compress", str(run), "--data", str(data_root), "--ffn-widths", "wide")
    assert r.returncode == 1 and b"--ffn-widths 'wide'" in r.stderr and not (run / "compress").exists()
    r = run_cli("compress", str(run), "--data", str(data_root), "--quantize", "int3")
    assert r.returncode == 1 and b"unknown quantization 'int3'" in r.stderr and b"valid:" in r.stderr
    r = run_cli("compress", str(run), "--data", str(data_root), "--teacher-quantize", "full-int8")
    assert r.returncode == 1 and b"full-int8 needs calibration" in r.stderr and not (run / "compress").exists()
    r = run_cli("compress", str(run), "--data", str(data_root), "--ffn-keep-last")
    assert r.returncode == 1 and b"ffn_keep_last needs feed-forward widths" in r.stderr and not (run / "compress").exists()


# ----------------------------------------------------------------------------- MobileBERT


@pytest.mark.model  # trains, distils and exports a tiny MobileBERT: not the fast lane
def test_mobilebert_student_teacher_path(tmp_path, data_root, corpus):
    """A tiny MobileBERT built from google/mobilebert-uncased's config, saved to a directory, is
    fine-tuned, distilled into, pruned and exported by path, like `--model google/mobilebert-uncased`."""
    from edgerep import LABELS
    from edgerep.data import sample_texts
    from edgerep.device.runtime import PolarityClassifier
    from edgerep.registry import Quantization
    from edgerep.workstation.compress.distill import DistillConfig, distill
    from edgerep.workstation.compress.vocab import prune_checkpoint
    from edgerep.workstation.export import export_bundles
    from edgerep.workstation.models import build_from_config
    from edgerep.workstation.train import TrainConfig, train

    src = make_tiny_pretrained(tmp_path / "tok")  # for the tokenizer files
    mb = tmp_path / "mobilebert"
    build_from_config("mobilebert", LABELS, tiny=True).base_model.save_pretrained(mb)
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        if (src / f).exists():
            shutil.copy2(src / f, mb / f)
    teacher = train(data_root, tmp_path / "t", TrainConfig(model=str(mb), epochs=1, limit=128, max_seq_len=32, learning_rate=1e-3))
    student = distill(data_root, tmp_path / "s", DistillConfig(teachers=(str(teacher),), layers=1, epochs=1, limit=128))
    with pytest.raises(ConfigError, match="'mobilebert'"):  # feed-forward pruning is for BERT-style layers only
        distill(data_root, tmp_path / "s2", DistillConfig(teachers=(str(teacher),), layers=1, ffn_width=8))
    prune_checkpoint(student, tmp_path / "p", corpus[0], corpus[1])
    tweets = sample_texts(data_root, "validation", 40)
    res = export_bundles(tmp_path / "p", tmp_path / "b", [Quantization.DYNAMIC_INT8], tweets)
    assert res[0].validation["passed"]
    assert json.loads((tmp_path / "p" / "config.json").read_text())["model_type"] == "mobilebert"
    clf = PolarityClassifier(res[0].path)
    assert len(clf.logits(tweets.texts[:5], entities=tweets.entities[:5])) == 5


def test_teacher_recipes_default_keeps_older_run_configs(tmp_path):
    """The teacher's recipe set is written to config.json only when not the default, so a run
    directory whose config lacks the field resumes; another set is a different run and is refused."""
    from edgerep.app.compress import DEFAULT_TEACHER_QUANTIZATIONS, CompressConfig
    from edgerep.io import check_or_write_config
    from edgerep.registry import Quantization

    default = CompressConfig()
    assert default.teacher_quantizations == DEFAULT_TEACHER_QUANTIZATIONS == (Quantization.DYNAMIC_INT4,)
    older = default.to_dict()
    assert "teacher_quantizations" not in older
    check_or_write_config(tmp_path / "config.json", older, ConfigError)
    check_or_write_config(tmp_path / "config.json", CompressConfig().to_dict(), ConfigError)
    every = CompressConfig(teacher_quantizations=("dynamic-int8", "dynamic-int4"))
    assert every.to_dict()["teacher_quantizations"] == ["dynamic-int8", "dynamic-int4"]
    with pytest.raises(ConfigError, match="teacher_quantizations"):
        check_or_write_config(tmp_path / "config.json", every.to_dict(), ConfigError)
    with pytest.raises(ConfigError, match="full-int8 needs calibration"):
        CompressConfig(teacher_quantizations=("full-int8",))


def test_pareto_front_and_recommendation_rule():
    from edgerep.app.compress import choose, pareto_front, step_buckets

    rows = [
        {"variant": "t/int8", "backend": "litert", "size_mb": 20.0, "latency_p50_ms": 7.0, "error": 0.24, "accuracy": 0.76, "macro_f1": 0.73},
        {"variant": "t/int4", "backend": "litert", "size_mb": 9.0, "latency_p50_ms": 5.0, "error": 0.245, "accuracy": 0.755, "macro_f1": 0.726},
        {"variant": "k2/int8", "backend": "litert", "size_mb": 7.5, "latency_p50_ms": 2.6, "error": 0.25, "accuracy": 0.75, "macro_f1": 0.71},
        {"variant": "k2/int4", "backend": "litert", "size_mb": 5.8, "latency_p50_ms": 2.55, "error": 0.26, "accuracy": 0.74, "macro_f1": 0.70},
        {"variant": "k2/ort", "backend": "onnxruntime", "size_mb": 6.0, "latency_p50_ms": 1.0, "error": 0.25, "accuracy": 0.75, "macro_f1": 0.71},
        {"variant": "t/slow", "backend": "litert", "size_mb": 21.0, "latency_p50_ms": 8.0, "error": 0.25, "accuracy": 0.75, "macro_f1": 0.72},
    ]
    assert pareto_front(rows) == [True, True, False, True, True, False]  # k2/int8 loses to k2/ort, t/slow to t/int8
    ref = {"accuracy": 0.76, "macro_f1": 0.73}
    chosen, rule = choose(rows, ref, 0.01)
    assert chosen["variant"] == "t/int4" and "within 1.0 points" in rule  # k2 misses macro-F1; ORT is not a candidate
    chosen, _ = choose(rows, ref, 0.03)
    assert chosen["variant"] == "k2/int4"  # 2.55 ms is within 5% of 2.6 ms: the smaller file wins
    assert choose(rows, {"accuracy": 0.9, "macro_f1": 0.9}, 0.01)[0] is None
    rows[3]["validation_passed"] = False  # beyond its recipe's tolerance: measured, never recommended
    assert choose(rows, ref, 0.03)[0]["variant"] == "k2/int8"
    assert step_buckets(56, 8) == (16, 24, 32, 40, 48, 56) and step_buckets(12, 8) == (12,)


def test_runtime_profile_script(tiny_entity_bundles, data_root, tmp_path):
    """benchmarks/runtime_profile.py on a real bundle: RSS grows step by step to a peak, MACs
    follow the architecture and bucket widths, and the report shows the record."""
    import importlib.util
    import sys

    from edgerep.app.report import build_report
    from edgerep.data import sample_texts
    from edgerep.measure.records import make_record, write_record

    spec = importlib.util.spec_from_file_location("runtime_profile", Path(__file__).parents[1] / "benchmarks" / "runtime_profile.py")
    rp = importlib.util.module_from_spec(spec)
    sys.modules["runtime_profile"] = rp
    spec.loader.exec_module(rp)
    bert = {"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 6}
    layer = 4 * 32 * 384**2 + 2 * 32 * 384 * 1536 + 2 * 32**2 * 384
    assert rp.macs_per_tweet(bert, 32) == 6 * layer + 384**2 + 384 * 3
    # [CLS]-only last layer: keys and values of 32 tokens, the rest for one
    cls_last = 2 * 32 * 384**2 + 2 * 384**2 + 2 * 384 * 1536 + 2 * 32 * 384
    assert rp.macs_per_tweet(bert, 32, cls_only=True) == 5 * layer + cls_last + 384**2 + 384 * 3
    assert rp.macs_per_tweet({**bert, "num_hidden_layers": 3}, 32, cls_only=True) / rp.macs_per_tweet({**bert, "num_hidden_layers": 3}, 32) < 0.74  # 27% fewer
    # a 3-layer student pruned to 768 units but its last layer: layers of their own widths
    narrow = {**bert, "num_hidden_layers": 3, "intermediate_size": 768, "ffn_layer_widths": [768, 768, 1536]}
    layer768 = 4 * 32 * 384**2 + 2 * 32 * 384 * 768 + 2 * 32**2 * 384
    assert rp.macs_per_tweet(narrow, 32, cls_only=True) == 2 * layer768 + cls_last + 384**2 + 384 * 3
    tweets = sample_texts(data_root, "validation", 30)
    bundle = tiny_entity_bundles["dynamic-int8"]
    mem = rp.memory_breakdown(bundle, tweets.texts, tweets.entities)
    assert mem[0]["step"] == "python interpreter" and mem[-1]["peak_mb"] >= max(m["rss_mb"] for m in mem) > 20
    comp = rp.achieved(bundle, tweets.texts, tweets.entities, repeats=1)
    assert comp["achieved_gmac_per_s"] > 0 and 16 <= comp["mean_width"] <= 32 and comp["graph"] == "cls-only-last-layer"
    peak = rp.kernel_peak(rows=8, k=64, n=64, repeats=3)
    assert set(peak["gmac_per_s"]) == {"float32", "int8 (dynamic_wi8_afp32)", "int4 (dynamic_wi4_afp32)"}
    comp["share_of_int8_peak"] = 0.5
    write_record(tmp_path / "res" / "profile.json", make_record("runtime_profile", {"kernel_peak": peak, "bundles": [
        {"bundle": str(bundle), "memory": mem, "compute": comp}]}))
    md = Path(build_report([tmp_path / "res"], tmp_path / "rep")["markdown"]).read_text()
    assert "Where memory and time go" in md and "allocate_tensors" in md


def test_ffn_pruning_removes_exactly_the_least_important_units(tiny_entity_model, data_root, tmp_path):
    """Pruning the feed-forward blocks to W units gives the same logits as the unpruned model with
    the other units' activations zeroed (real validation tweets), keeps the W most important
    units of each layer, and saves a standard model directory that loads with the new width."""
    import torch

    from edgerep.data import sample_texts
    from edgerep.device.tokenizer import TweetTokenizer
    from edgerep.workstation.compress.prune import feed_forward_blocks, ffn_importance, prune_ffn
    from edgerep.workstation.inference import ids_logits
    from edgerep.workstation.models import load_finetuned

    model, info = load_finetuned(tiny_entity_model)
    tok = TweetTokenizer(tiny_entity_model / "tokenizer.json", int(info["max_seq_len"]), True)
    tweets = sample_texts(data_root, "validation", 64)
    ids = tok.ids(tweets.texts, tweets.entities)
    importance = ffn_importance(model, tok, ids)
    assert [len(s) for s in importance] == [64, 64] and all((s >= 0).all() for s in importance)
    keep = [np.sort(np.argsort(-s)[:24]) for s in importance]
    masks = []
    for (_, inter, _), k in zip(feed_forward_blocks(model), keep):
        m = torch.zeros(inter.out_features)
        m[k] = 1.0
        masks.append(inter.register_forward_hook(lambda _m, _i, out, m=m: out.masked_fill(m == 0, -1e4)))  # gelu(-1e4) == 0
    masked = ids_logits(model, tok, ids)
    for h in masks:
        h.remove()
    prune_ffn(model, 24, importance)
    assert model.config.intermediate_size == 24
    assert all(inter.out_features == 24 and out.in_features == 24 for _, inter, out in feed_forward_blocks(model))
    pruned = ids_logits(model, tok, ids)
    np.testing.assert_allclose(pruned, masked, atol=1e-4)
    model.save_pretrained(tmp_path / "pruned")
    from transformers import AutoModelForSequenceClassification

    again = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "pruned"))
    np.testing.assert_allclose(ids_logits(again, tok, ids), pruned, atol=1e-5)
    with pytest.raises(ConfigError, match="must be in 1..24"):
        prune_ffn(model, 25, [s[:24] for s in importance])


def test_distill_with_ffn_width_exports_a_narrow_student(tiny_entity_model, data_root, tmp_path):
    """``ffn_width`` gives a student with that many feed-forward units per layer, recorded in its
    info, that converts and quantizes (int4, quantization-aware) within tolerance; a width above
    the teacher's is one error before anything is written."""
    from edgerep.data import sample_texts
    from edgerep.registry import Quantization
    from edgerep.workstation.compress.distill import DistillConfig, distill
    from edgerep.workstation.export import export_bundles
    from edgerep.workstation.models import load_finetuned

    with pytest.raises(ConfigError, match="feed-forward width 65"):
        distill(data_root, tmp_path / "wide", DistillConfig(teachers=(str(tiny_entity_model),), layers=1, ffn_width=65))
    assert not (tmp_path / "wide").exists()
    cfg = DistillConfig(teachers=(str(tiny_entity_model),), layers=1, epochs=1, limit=96, batch_size=32, ffn_width=16,
                        quant_aware="dynamic-int4")
    model_dir = distill(data_root, tmp_path / "narrow", cfg)
    model, info = load_finetuned(model_dir)
    assert model.config.intermediate_size == 16 and info["distillation"]["ffn_width"] == 16
    assert model.bert.encoder.layer[0].intermediate.dense.weight.shape == (16, 32)
    [result] = export_bundles(model_dir, tmp_path / "bundles", [Quantization.DYNAMIC_INT4], sample_texts(data_root, "validation", 60))
    assert result.validation["passed"], result.validation


def test_distill_prunes_after_the_full_width_epochs_and_resumes_across_the_cut(tiny_entity_model, data_root, tmp_path, monkeypatch):
    """``prune_after_epoch=1``: epoch 1 trains the full width (its checkpoint keeps every unit),
    the cut comes after it, later epochs train the narrow student, and the best epoch is chosen
    among the pruned ones only. A run interrupted right after epoch 1 cuts on resume and ends
    with the same student as an uninterrupted one."""
    import torch

    from edgerep.workstation.compress.distill import DistillConfig, distill
    from edgerep.workstation.models import load_finetuned

    with pytest.raises(ConfigError, match="prune_after_epoch 2: needs a feed-forward width to prune to and must be in"):
        DistillConfig(teachers=(str(tiny_entity_model),), layers=1, epochs=2, ffn_width=16, prune_after_epoch=2)
    with pytest.raises(ConfigError, match="prune_after_epoch 1: needs a feed-forward width"):
        DistillConfig(teachers=(str(tiny_entity_model),), layers=1, epochs=2, prune_after_epoch=1)
    cfg = DistillConfig(teachers=(str(tiny_entity_model),), layers=1, epochs=2, limit=160, batch_size=32, ffn_width=16,
                        prune_after_epoch=1, quant_aware="dynamic-int4")
    assert cfg.to_dict()["prune_after_epoch"] == 1 and "prune_after_epoch" not in DistillConfig(teachers=("t",), ffn_width=16).to_dict()
    full = distill(data_root, tmp_path / "full", cfg)
    first = json.loads((tmp_path / "full" / "checkpoints" / "epoch-1" / "config.json").read_text())
    assert first["intermediate_size"] == 64  # the tiny teacher's width: epoch 1 is not pruned
    model, info = load_finetuned(full)
    assert model.config.intermediate_size == 16 and info["best_epoch"] == 2 and info["distillation"]["ffn_width"] == 16
    with interrupt_after_epoch_1(monkeypatch), pytest.raises(Interrupted):
        distill(data_root, tmp_path / "resumed", cfg)
    resumed, _ = load_finetuned(distill(data_root, tmp_path / "resumed", cfg))
    for (k, v), w in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(v, w, atol=1e-6), k


def test_keep_last_prunes_all_but_the_last_layer_and_round_trips(tiny_entity_model, data_root, tmp_path):
    """``keep_last=True`` cuts every feed-forward block but the last one (its logits equal the
    unpruned model's with the same units masked, on real validation tweets), saves the per-layer
    widths, and :func:`load_sequence_classifier` loads the directory back to the same logits
    (plain ``from_pretrained`` expects one width and refuses it)."""
    import torch

    from edgerep.data import sample_texts
    from edgerep.device.tokenizer import TweetTokenizer
    from edgerep.workstation.compress.prune import feed_forward_blocks, ffn_importance, ffn_layer_widths, prune_ffn
    from edgerep.workstation.inference import ids_logits
    from edgerep.workstation.models import load_finetuned, load_sequence_classifier

    model, info = load_finetuned(tiny_entity_model)
    tok = TweetTokenizer(tiny_entity_model / "tokenizer.json", int(info["max_seq_len"]), True)
    tweets = sample_texts(data_root, "validation", 64)
    ids = tok.ids(tweets.texts, tweets.entities)
    importance = ffn_importance(model, tok, ids)
    first = feed_forward_blocks(model)[0][1]
    keep = np.sort(np.argsort(-importance[0])[:24])
    m = torch.zeros(first.out_features)
    m[keep] = 1.0
    hook = first.register_forward_hook(lambda _m, _i, out: out.masked_fill(m == 0, -1e4))  # gelu(-1e4) == 0
    masked = ids_logits(model, tok, ids)
    hook.remove()
    prune_ffn(model, 24, importance, keep_last=True)
    assert ffn_layer_widths(model.config) == [24, 64] and model.config.intermediate_size == 24
    assert [inter.out_features for _, inter, _ in feed_forward_blocks(model)] == [24, 64]
    pruned = ids_logits(model, tok, ids)
    np.testing.assert_allclose(pruned, masked, atol=1e-4)
    model.save_pretrained(tmp_path / "pruned")
    assert json.loads((tmp_path / "pruned" / "config.json").read_text())["ffn_layer_widths"] == [24, 64]
    again = load_sequence_classifier(tmp_path / "pruned")
    np.testing.assert_allclose(ids_logits(again, tok, ids), pruned, atol=1e-5)
    from transformers import AutoModelForSequenceClassification

    with pytest.raises(Exception):
        AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "pruned"))


def test_distill_keep_last_student_prunes_vocabulary_and_exports(tiny_entity_model, data_root, corpus, tmp_path):
    """A student distilled with ``ffn_keep_last`` (pruned after its first epoch) records per-layer
    widths, keeps them through vocabulary pruning with the same logits on real tweets, and its
    int4 LiteRT bundle with the ``[CLS]``-only last layer passes validation against PyTorch; the
    option alone, without a width, is one error."""
    from edgerep.data import sample_texts
    from edgerep.device.tokenizer import TweetTokenizer
    from edgerep.registry import Quantization
    from edgerep.workstation.compress.distill import DistillConfig, distill
    from edgerep.workstation.compress.vocab import prune_checkpoint
    from edgerep.workstation.export import export_bundles
    from edgerep.workstation.inference import torch_logits
    from edgerep.workstation.models import load_finetuned

    with pytest.raises(ConfigError, match="ffn_keep_last: needs a feed-forward width"):
        DistillConfig(teachers=(str(tiny_entity_model),), layers=2, ffn_keep_last=True)
    cfg = DistillConfig(teachers=(str(tiny_entity_model),), layers=2, epochs=2, limit=96, batch_size=32, ffn_width=16,
                        prune_after_epoch=1, ffn_keep_last=True, quant_aware="dynamic-int4")
    assert cfg.to_dict()["ffn_keep_last"] and "ffn_keep_last" not in DistillConfig(teachers=("t",), ffn_width=16).to_dict()
    model_dir = distill(data_root, tmp_path / "student", cfg)
    model, info = load_finetuned(model_dir)
    assert info["distillation"]["ffn_layer_widths"] == [16, 64] and info["distillation"]["ffn_width"] == 16
    texts, names = corpus
    prune_checkpoint(model_dir, tmp_path / "pruned", texts, names)
    small, small_info = load_finetuned(tmp_path / "pruned")
    assert [layer.intermediate.dense.out_features for layer in small.bert.encoder.layer] == [16, 64]
    tweets = sample_texts(data_root, "validation", 100)
    L = int(info["max_seq_len"])
    np.testing.assert_allclose(
        torch_logits(small, TweetTokenizer(tmp_path / "pruned" / "tokenizer.json", L, True), tweets.texts, entities=tweets.entities),
        torch_logits(model, TweetTokenizer(model_dir / "tokenizer.json", L, True), tweets.texts, entities=tweets.entities), atol=1e-5)
    [result] = export_bundles(tmp_path / "pruned", tmp_path / "bundles", [Quantization.DYNAMIC_INT4], sample_texts(data_root, "validation", 60))
    assert result.validation["passed"], result.validation


# ----------------------------------------------------------------------------- transfer text


def test_transfer_text_joins_tweeteval_tweets_as_unlabelled_with_a_replab_entity(tiny_entity_model, data_root, tmp_path):
    """``transfer_text``: TweetEval's training-portion tweets follow the RepLab transfer set,
    unlabelled (their sentiment labels never used), each read with a RepLab entity; the
    distillation records them, and a missing folder is one error with nothing written."""
    from edgerep.data import SplitConfig
    from edgerep.data.replab import entity_names
    from edgerep.data.tweeteval import TRAIN_PORTION, load_sentiment
    from edgerep.device.tokenizer import TweetTokenizer
    from edgerep.workstation.compress.distill import DistillConfig, _transfer_set, distill
    from edgerep.workstation.models import read_model_info

    tweeteval = data_root.parent / "tweeteval-sentiment"
    info = read_model_info(tiny_entity_model)
    tok = TweetTokenizer(tiny_entity_model / "tokenizer.json", int(info["max_seq_len"]), True)
    split = SplitConfig(**info["split"])
    base = _transfer_set(data_root, split, tok, DistillConfig(teachers=(str(tiny_entity_model),)))
    cfg = DistillConfig(teachers=(str(tiny_entity_model),), transfer_text=(str(tweeteval),))
    more = _transfer_set(data_root, split, tok, cfg)
    extra = load_sentiment(tweeteval, TRAIN_PORTION).texts
    n = len(base.ids)
    assert more.counts[f"text:{tweeteval}"] == len(extra) == len(more.ids) - n > 12_000
    assert all(np.array_equal(a, b) for a, b in zip(base.ids, more.ids[:n])) and np.array_equal(base.y, more.y[:n])
    assert (more.y[n:] == -1).all() and np.array_equal(more.val_y, base.val_y)
    names = sorted(set(entity_names(data_root).values()))
    paired = []
    for i in range(0, len(extra), 1500):  # each tweet is read with one of RepLab's entities
        match = [e for e in names if np.array_equal(tok.ids([extra[i]], [e])[0], more.ids[n + i])]
        assert match, extra[i]
        paired.append(match[0])
    assert len(set(paired)) > 1  # drawn, not one fixed entity

    student = distill(data_root, tmp_path / "k1", DistillConfig(teachers=(str(tiny_entity_model),), layers=1, epochs=1,
                                                               limit=200, transfer_text=(str(tweeteval),)))
    d = json.loads((student / "edgerep_model.json").read_text())["distillation"]
    assert d["transfer"][f"text:{tweeteval}"] == len(extra) and d["config"]["transfer_text"] == [str(tweeteval)]
    with np.load(tmp_path / "k1" / "teacher-logits.npz") as z:
        assert json.loads(str(z["key"]))["transfer_text"] == [str(tweeteval)]
    assert "transfer_text" not in DistillConfig(teachers=("t",)).to_dict()  # older distillations resume

    r = run_cli("distill", "--data", str(data_root), "--teacher", str(tiny_entity_model), "--out", str(tmp_path / "x"),
                "--layers", "1", "--transfer-text", str(tmp_path / "nope"))
    assert r.returncode == 1 and r.stderr.decode().startswith("error:") and str(tmp_path / "nope").encode() in r.stderr
    assert b"Traceback" not in r.stderr and not (tmp_path / "x").exists()
    run = tmp_path / "run"
    shutil.copytree(tiny_entity_model, run / "train" / "model")
    r = run_cli("compress", str(run), "--data", str(data_root), "--layers", "1", "--transfer-text", str(tmp_path / "nope"))
    assert r.returncode == 1 and str(tmp_path / "nope").encode() in r.stderr and not (run / "compress").exists()
    r = run_cli("run", "--data", str(data_root), "--out", str(tmp_path / "r"), "--student-widths", "64",
                "--prune-after-epoch", "1", "--transfer-text", str(tmp_path / "nope"))  # before fine-tuning, not after
    assert r.returncode == 1 and str(tmp_path / "nope").encode() in r.stderr and not (tmp_path / "r").exists()

"""The classifier head of a model that decides relatedness as well as polarity.

One linear layer gives three polarity scores ``z`` and a relatedness score ``r`` per tweet; the
head returns four logits over :data:`edgerep.RELATEDNESS_LABELS`::

    logit_c         = log_softmax(z)_c + log sigmoid(r)     c in NEGATIVE, NEUTRAL, POSITIVE
    logit_UNRELATED = log sigmoid(-r)

so ``softmax(logits) = [P(c | related) P(related), 1 - P(related)]`` and the logits are already
log-probabilities (they sum to one after ``exp``). Cross-entropy over them is the polarity
cross-entropy on the related tweets plus the relatedness binary cross-entropy on all tweets: an
UNRELATED tweet's loss reaches ``r`` only, never the differences between the polarity scores (a
plain four-way softmax lowers the polarity scores of unrelated tweets in proportion to their
probabilities, which drags on the polarity class unrelated tweets resemble). The device runtime
reads these logits as any four-way bundle (:func:`edgerep.device.runtime.relatedness_split`).

The head keeps the replaced layer's parameters (same state-dict keys), and is marked in the model
config as ``edgerep_relatedness_head = "factorized"`` (saved in ``config.json``), so every load
of the model rebuilds it (:func:`with_relatedness_head`).
"""

from __future__ import annotations

import torch

from edgerep import LABELS

#: The model-config attribute that marks the factorized relatedness head, and its value.
RELATEDNESS_HEAD = "edgerep_relatedness_head"
FACTORIZED = "factorized"


class RelatednessHead(torch.nn.Linear):
    """A linear layer ``[..., in] -> [..., 4]`` whose output is composed into log-probabilities
    (module docstring): float32 ``[..., 3 polarity + UNRELATED]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - the module docstring says what it returns
        z = super().forward(x)
        n = len(LABELS)
        polarity = torch.log_softmax(z[..., :n], dim=-1)
        r = z[..., n:]
        # [log sigmoid(r), log sigmoid(-r)] as one log-softmax over (r, 0): one op the converters know
        related = torch.log_softmax(torch.cat([r, torch.zeros_like(r)], dim=-1), dim=-1)
        return torch.cat([polarity + related[..., :1], related[..., 1:]], dim=-1)


def relatedness_loss(logits: torch.Tensor, labels: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    """``mean(polarity CE on related tweets + weight x relatedness BCE)`` over a batch, from the
    head's log-probabilities ``logits`` float [batch, 4] and gold indices ``labels`` int64 [batch]
    into :data:`edgerep.RELATEDNESS_LABELS`. With ``weight`` 1 it equals the cross-entropy over
    ``logits``: log P(related) = logsumexp of the first three logits (module docstring)."""
    n = len(LABELS)
    related = labels < n
    log_related = torch.logsumexp(logits[:, :n], dim=-1)
    polarity = -(torch.log_softmax(logits[:, :n], dim=-1).gather(1, labels.clamp(max=n - 1)[:, None])[:, 0])
    relatedness = -torch.where(related, log_related, logits[:, n])
    return (torch.where(related, polarity, torch.zeros_like(polarity)) + weight * relatedness).mean()


def mark_factorized(model) -> None:
    """Mark ``model``'s config for the factorized head and put the head in place."""
    setattr(model.config, RELATEDNESS_HEAD, FACTORIZED)
    with_relatedness_head(model)


def with_relatedness_head(model):
    """``model`` with its output layer made a :class:`RelatednessHead` (sharing its parameters)
    when its config is marked factorized; unchanged otherwise. Returns ``model``.

    Raises:
        ValueError: a marked model without a linear output layer of 4 units under ``classifier``.
    """
    if getattr(model.config, RELATEDNESS_HEAD, None) != FACTORIZED:
        return model
    name, layer = next(
        ((n, m) for n, m in reversed(list(model.named_modules())) if n.startswith("classifier") and isinstance(m, torch.nn.Linear)),
        (None, None),
    )
    if layer is None or layer.out_features != len(LABELS) + 1:
        raise ValueError(f"a factorized relatedness head needs a linear output layer of {len(LABELS) + 1} units under 'classifier'")
    if isinstance(layer, RelatednessHead):
        return model
    head = RelatednessHead(layer.in_features, layer.out_features, bias=layer.bias is not None)
    head.weight = layer.weight
    head.bias = layer.bias
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, head)
    return model

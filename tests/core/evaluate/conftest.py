"""Fixtures of the evaluation tests: a tiny demo build and random-weight checkpoints on it."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import core.evaluate.robustness as robustness
from core.checkpoints import save_checkpoint
from core.data import build_demo, load_dataset
from core.encoders import encoder_from_choice
from core.evaluate import EvaluationOptions, EvaluationReport, evaluate
from core.fusion import build_fusion
from core.model import MultimodalClassifier

FAST = EvaluationOptions(bootstrap=100, reliance_repeats=2, large_batch=8)


def random_proba(n: int, c: int, seed: int = 0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(n, c)) * 2
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 100-source demo build and two random-weight checkpoints sharing their encoders;
    ``early`` ignores text entirely (zero projection and missing embedding)."""
    root = tmp_path_factory.mktemp("eval")
    dataset = load_dataset(build_demo(root / "data", seed=3, progress=False, n_source=100))
    torch.manual_seed(0)
    corpus = [r.text for r in dataset.split("train") if r.text]
    encoders = {m: encoder_from_choice(m, "builtin", corpus=corpus) for m in ("audio", "image", "text")}
    dims = {m: e.out_dim for m, e in encoders.items()}
    paths = {}
    for name in ("early", "late"):
        fusion = build_fusion(name, in_dims=dims, num_classes=len(dataset.classes), hidden=16)
        model = MultimodalClassifier(encoders, fusion, dataset.classes)
        if name == "early":
            with torch.no_grad():
                for p in fusion.project["text"].parameters():
                    p.zero_()
                fusion.missing["text"].zero_()
        paths[name] = save_checkpoint(model, root / "ck" / name, name=name, kind="fusion")
    five = MultimodalClassifier(
        {"image": encoders["image"]},
        build_fusion("early", in_dims={"image": 128}, num_classes=6, hidden=16),
        dataset.classes[:5] + ["other"],
    )
    paths["five"] = save_checkpoint(five, root / "ck" / "five", name="five", kind="unimodal")
    return SimpleNamespace(root=root, dataset=dataset, paths=paths)


@pytest.fixture(scope="module")
def encode_calls() -> list[int]:
    return []


def count_sweep_encodes(patch: pytest.MonkeyPatch, calls: list[int]) -> None:
    """From now on, ``calls`` gets the rows of every (chunk, severity) the corruption sweeps
    encode, on a CPU (workers' path, :class:`ForwardEach`) or a GPU (:func:`encode`). These
    splits are small: no worker processes, so every call is seen here."""

    class Counted(robustness.ForwardEach):
        def __call__(self, rows):
            out = super().__call__(rows)
            calls.extend(len(rows) for _ in out)
            return out

    real = robustness.encode
    patch.setattr(robustness, "ForwardEach", Counted)
    patch.setattr(robustness, "encode", lambda encoder, values, *a, **kw: calls.append(len(values)) or real(encoder, values, *a, **kw))


@pytest.fixture(scope="module")
def report(tiny, encode_calls) -> EvaluationReport:
    with pytest.MonkeyPatch.context() as patch:
        count_sweep_encodes(patch, encode_calls)
        # No embedding store: corrupted embeddings other tests stored would be reused, not counted.
        return evaluate([tiny.paths["early"], tiny.paths["late"]], tiny.dataset, "test", FAST, embedding_cache=False)

"""Generated and adversarial texts through the on-device runtime: never a crash."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgerep.errors import InputTextError
from edgerep.device.runtime import PolarityClassifier

@pytest.fixture(scope="module")
def clf(tiny_bundles):
    return PolarityClassifier(tiny_bundles["dynamic-int8"], num_threads=1)


texts = st.one_of(
    st.text(max_size=400),  # any Unicode, controls and surrogates included
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"]), max_size=50),  # invisible only
    st.text(alphabet="😀😡🚗💸🏦🎵 ", max_size=80),  # emoji only
    st.from_regex(r"(RT )?(@\w{1,15} ){0,3}[\w #&;:/.]{0,200}(https?://t\.co/\w{1,10})?", fullmatch=True),  # tweet-shaped
    st.text(min_size=5000, max_size=12000),  # very long
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=texts)
def test_runtime_never_crashes(clf, text):
    try:
        pred = clf.classify(text)
    except InputTextError as exc:  # the one documented refusal: nothing left after normalization
        assert "empty after normalization" in str(exc)
        return
    assert pred.label in clf.labels
    assert abs(sum(pred.probabilities.values()) - 1.0) < 1e-4

"""RepLab 2013 data: loading (:mod:`.replab`), validation split (:mod:`.split`), which tweets each
job uses (:mod:`.select`), statistics (:mod:`.stats`).

Standard library and numpy only (statistics also use the device tokenizer), so the device can
evaluate a bundle on real data.
"""

from edgerep.data.replab import LoadReport, Tweet, load_split
from edgerep.data.select import (
    Samples,
    benchmark_tweets,
    part_texts,
    sample_texts,
    select_tweets,
    smoke_validation_size,
    spread,
    training_tweets,
)
from edgerep.data.split import SplitConfig, split_train_validation

__all__ = [
    "LoadReport",
    "Samples",
    "Tweet",
    "load_split",
    "SplitConfig",
    "benchmark_tweets",
    "part_texts",
    "sample_texts",
    "select_tweets",
    "smoke_validation_size",
    "split_train_validation",
    "spread",
    "training_tweets",
]

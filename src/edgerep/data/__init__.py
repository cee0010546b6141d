"""RepLab 2013 data: loading (:mod:`.replab`), validation split (:mod:`.split`), statistics (:mod:`.stats`).

Standard library and numpy only, so the device can evaluate a bundle on real data.
"""

from edgerep.data.replab import LoadReport, Tweet, load_split
from edgerep.data.split import SplitConfig, benchmark_tweets, split_train_validation, spread

__all__ = ["LoadReport", "Tweet", "load_split", "SplitConfig", "benchmark_tweets", "split_train_validation", "spread"]

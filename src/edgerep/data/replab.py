"""Loader for the official RepLab 2013 corpus layout, polarity and filtering tasks.

Layout (RepLab 2013 README, section 3), for a split directory ``<root>/<split>/``::

    labeled/<entity>.dat      tweet_id author entity_id filtering polarity topic topic_priority
    tweet_info/<entity>.dat   tweet_id author entity_id tweet_url language timestamp urls ...
    tweet_text/<entity>.tsv   tweet_id author entity_id text
    ../entities/replab2013_entities.tsv   entity_id query entity_name category ...

All files are tab-separated with double-quoted fields (``""`` escapes a quote), one header row.
The polarity task keeps tweets that are English (``language == "EN"`` in tweet_info), related
(``filtering == "RELATED"``) and labelled POSITIVE/NEUTRAL/NEGATIVE; with ``relatedness`` the
filtering task's ``UNRELATED`` tweets are kept too, labelled :data:`edgerep.UNRELATED`.

Real defects of the distributed files are handled and counted in :class:`LoadReport`, never
silently: a UTF-8 byte-order mark (every ``tweet_text`` file), non-UTF-8 bytes (cp1252 author
names in 14 ``labeled`` files, decoded with U+FFFD replacement), stray polarity values (two rows
with ``RELATED`` as polarity), labelled tweets whose text is missing or empty (deleted tweets),
and tweet ids listed twice in a text file. A row with the wrong number of fields or a file
without the expected header is a :class:`~edgerep.errors.DataError` naming file and line.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edgerep import LABELS, RELATEDNESS_LABELS, UNRELATED
from edgerep.errors import DataError
from edgerep.io import read_bytes

ENTITIES_FILE = Path("entities") / "replab2013_entities.tsv"
LABELED_COLUMNS = ("tweet_id", "author", "entity_id", "filtering", "polarity", "topic", "topic_priority")
INFO_COLUMNS = ("tweet_id", "author", "entity_id", "tweet_url", "language", "timestamp")
TEXT_COLUMNS = ("tweet_id", "author", "entity_id", "text")
ENTITY_COLUMNS = ("entity_id", "query", "entity_name", "category")

csv.field_size_limit(1 << 24)


@dataclass(frozen=True)
class Tweet:
    """One labelled tweet of the polarity (and filtering) task.

    Attributes:
        tweet_id: Twitter status id (decimal string).
        entity_id: RepLab entity, e.g. ``RL2013D01E001``.
        domain: entity category from the entities file: automotive, banking, universities, music.
        text: raw tweet text (not normalized).
        label: one of :data:`edgerep.LABELS`, or :data:`edgerep.UNRELATED` for a tweet that is not
            about the entity (loaded only with ``relatedness``).
        timestamp: UNIX time (s) of publication, from tweet_info.
        language: ``EN`` or ``ES`` from tweet_info.
        entity_name: the entity's name as tweets and users write it: the ``query`` column of
            the entities file (``BMW``; its ``entity_name`` column holds legal names such as
            ``Bayerische Motoren Werke AG`` that tweets rarely use). The first segment of an
            entity-conditioned model's input.
    """

    tweet_id: str
    entity_id: str
    domain: str
    text: str
    label: str
    timestamp: int
    language: str
    entity_name: str = ""

    @property
    def label_id(self) -> int:
        """Index of :attr:`label` in :data:`edgerep.RELATEDNESS_LABELS` (the logit index; the
        polarity classes have the same index in :data:`edgerep.LABELS`)."""
        return RELATEDNESS_LABELS.index(self.label)

    @property
    def related(self) -> bool:
        """Whether the tweet is about its entity (RepLab's ``filtering == "RELATED"``)."""
        return self.label != UNRELATED


@dataclass
class LoadReport:
    """What :func:`load_split` read, kept and dropped, with the reason for every drop.

    Attributes:
        split_dir: the split directory read.
        entities: number of entity files read.
        labeled_rows: data rows in ``labeled/*.dat``.
        kept: tweets returned.
        dropped: rows not returned, by reason (``unrelated``, ``not_<lang>``, ``unlabeled_polarity``,
            ``stray_polarity:<value>``, ``missing_text``, ``empty_text``, ``missing_info``).
        defects: file-level defects that were repaired (``bom_files``, ``non_utf8_lines``,
            ``duplicate_text_rows``).
        defect_examples: up to 5 ``file:line`` locations per defect kind.
        label_counts: kept tweets per label.
    """

    split_dir: str
    entities: int = 0
    labeled_rows: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    defects: Counter = field(default_factory=Counter)
    defect_examples: dict[str, list[str]] = field(default_factory=dict)
    label_counts: Counter = field(default_factory=Counter)

    def note(self, kind: str, where: str, n: int = 1) -> None:
        """Count a repaired defect ``kind`` seen at ``where`` (``file:line``)."""
        self.defects[kind] += n
        ex = self.defect_examples.setdefault(kind, [])
        if len(ex) < 5:
            ex.append(where)

    def to_dict(self) -> dict:
        """JSON-ready dict of the report."""
        return {
            "split_dir": self.split_dir,
            "entities": self.entities,
            "labeled_rows": self.labeled_rows,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "defects": dict(sorted(self.defects.items())),
            "defect_examples": self.defect_examples,
            "label_counts": {k: self.label_counts.get(k, 0) for k in RELATEDNESS_LABELS if k in LABELS or self.label_counts.get(k)},
        }


def _read_table(path: Path, columns: tuple[str, ...], report: LoadReport) -> list[tuple[int, list[str]]]:
    """Parse one quoted TSV file; return ``(line_number, fields)`` rows after the header.

    Raises:
        DataError: missing file, wrong header, or a row whose field count differs from the header.
    """
    raw = read_bytes(path, DataError)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
        report.note("bom_files", f"{path}:1")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Count the offending lines, then decode with replacement characters.
        for i, line in enumerate(raw.split(b"\n"), 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                report.note("non_utf8_lines", f"{path}:{i} (byte 0x{line[exc.start]:02x})")
        text = raw.decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quotechar='"', strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty file (expected a header row {', '.join(columns)})")
        if tuple(h.strip() for h in header[: len(columns)]) != columns:
            raise DataError(f"{path}:1: unexpected header {header[: len(columns)]!r}; expected columns {list(columns)!r}")
        width = len(header)
        start = reader.line_num + 1
        for fields in reader:
            if not fields:
                start = reader.line_num + 1
                continue
            if len(fields) != width:
                raise DataError(f"{path}:{start}: expected {width} tab-separated fields ({', '.join(header)}), found {len(fields)}")
            rows.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: malformed quoted field ({exc})") from None
    return rows


def load_entities(root: str | os.PathLike) -> dict[str, str]:
    """Map entity id -> domain from ``<root>/entities/replab2013_entities.tsv``.

    Raises:
        DataError: file missing or malformed.
    """
    return {k: domain for k, (_, domain) in _entity_table(root).items()}


def entity_names(root: str | os.PathLike) -> dict[str, str]:
    """Map entity id -> name (the ``query`` column, see :attr:`Tweet.entity_name`).

    Raises:
        DataError: file missing or malformed, or an entity with an empty name (file and line).
    """
    return {k: name for k, (name, _) in _entity_table(root).items()}


def _entity_table(root: str | os.PathLike) -> dict[str, tuple[str, str]]:
    """entity id -> (name, domain) from the entities file."""
    path = Path(root) / ENTITIES_FILE
    table = {}
    for ln, f in _read_table(path, ENTITY_COLUMNS, LoadReport(str(path))):
        if not f[1].strip():
            raise DataError(f"{path}:{ln}: field 'query' (the entity's name) is empty")
        table[f[0]] = (f[1].strip(), f[3])
    return table


def find_split_dir(root: str | os.PathLike, split: str) -> Path:
    """Return ``<root>/<split>`` after checking it has the three RepLab subdirectories.

    Raises:
        DataError: the directory or one of ``labeled``, ``tweet_info``, ``tweet_text`` is missing.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data directory not found (expected the RepLab 2013 corpus root)")
    split_dir = root / split
    if not split_dir.is_dir():
        have = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "labeled").is_dir())
        raise DataError(f"{split_dir}: split '{split}' not found; splits present: {have or 'none'}")
    for sub in ("labeled", "tweet_info", "tweet_text"):
        if not (split_dir / sub).is_dir():
            raise DataError(f"{split_dir / sub}: directory missing (official RepLab layout)")
    return split_dir


def load_split(
    root: str | os.PathLike,
    split: str = "training",
    languages: tuple[str, ...] = ("EN",),
    entities: tuple[str, ...] | None = None,
    relatedness: bool = False,
) -> tuple[list[Tweet], LoadReport]:
    """Load the polarity-task tweets of one RepLab 2013 split (with ``relatedness``, the
    filtering task's UNRELATED tweets too).

    Args:
        root: corpus root holding ``entities/`` and the split directories.
        split: ``training`` or ``test`` (same layout).
        languages: tweet_info ``language`` values to keep.
        entities: restrict to these entity ids (``None``: all entities of the split).
        relatedness: keep ``filtering == "UNRELATED"`` tweets, labelled :data:`edgerep.UNRELATED`
            (RELATED tweets without a polarity label stay out).

    Returns:
        ``(tweets, report)``: tweets ordered by entity then file order; the report counts every
        row read, kept and dropped, and every repaired defect.

    Raises:
        DataError: missing directory or file, malformed row, unknown entity (message names the
            file and line).
    """
    split_dir = find_split_dir(root, split)
    table = _entity_table(root)
    report = LoadReport(str(split_dir))
    tweets: list[Tweet] = []
    label_files = sorted((split_dir / "labeled").glob("*.dat"))
    if not label_files:
        raise DataError(f"{split_dir / 'labeled'}: no .dat files")
    for lab_path in label_files:
        entity = lab_path.stem
        if entities is not None and entity not in entities:
            continue
        if entity not in table:
            raise DataError(f"{lab_path}: entity {entity} is not listed in {Path(root) / ENTITIES_FILE}")
        report.entities += 1
        tweets += _entity_tweets(split_dir, lab_path, table[entity], languages, report, relatedness)
    report.kept = len(tweets)
    if entities is not None and report.entities == 0:
        raise DataError(f"{split_dir / 'labeled'}: none of the entities {list(entities)} found")
    return tweets, report


def _entity_tweets(
    split_dir: Path, lab_path: Path, name_domain: tuple[str, str], languages: tuple[str, ...], report: LoadReport, relatedness: bool = False
) -> list[Tweet]:
    """The polarity-labelled (with ``relatedness``: and the UNRELATED) tweets of one entity (its ``labeled``, ``tweet_info`` and
    ``tweet_text`` files), counting drops and defects in ``report``.

    Raises:
        DataError: a missing file, a malformed row, a timestamp that is not an integer (file and
            line named).
    """
    entity = lab_path.stem
    tweets: list[Tweet] = []
    info_path = split_dir / "tweet_info" / f"{entity}.dat"
    text_path = split_dir / "tweet_text" / f"{entity}.tsv"
    info = {f[0]: (f[4], f[5], ln) for ln, f in _read_table(info_path, INFO_COLUMNS, report)}
    texts: dict[str, str] = {}
    for ln, f in _read_table(text_path, TEXT_COLUMNS, report):
        if f[0] in texts:
            report.note("duplicate_text_rows", f"{text_path}:{ln}")
            if texts[f[0]].strip():
                continue
        texts[f[0]] = f[3]
    for ln, f in _read_table(lab_path, LABELED_COLUMNS, report):
        report.labeled_rows += 1
        tweet_id, filtering, polarity = f[0], f[3], f[4]
        if tweet_id not in info:
            report.dropped["missing_info"] += 1
            continue
        language, ts, info_ln = info[tweet_id]
        if language not in languages:
            report.dropped[f"not_{'_'.join(languages)}"] += 1
            continue
        if filtering != "RELATED" and not (relatedness and filtering == UNRELATED):
            report.dropped["unrelated" if filtering == UNRELATED else f"filtering:{filtering}"] += 1
            continue
        if filtering == UNRELATED:
            polarity = UNRELATED
        elif polarity not in LABELS:
            if polarity == "":
                report.dropped["unlabeled_polarity"] += 1
            else:
                report.dropped[f"stray_polarity:{polarity}"] += 1
                report.note("stray_polarity", f"{lab_path}:{ln}")
            continue
        text = texts.get(tweet_id)
        if text is None:
            report.dropped["missing_text"] += 1
            continue
        if not text.strip():
            report.dropped["empty_text"] += 1
            continue
        try:
            timestamp = int(ts)
        except ValueError:
            raise DataError(f"{info_path}:{info_ln}: field 'timestamp' is not an integer: {ts!r}") from None
        name, domain = name_domain
        tweets.append(Tweet(tweet_id, entity, domain, text, polarity, timestamp, language, name))
        report.label_counts[polarity] += 1
    return tweets


@dataclass(frozen=True)
class RawTweet:
    """A tweet of a split whether or not it has a polarity label: ``tweet_id``, ``entity_id``,
    ``text``, ``timestamp`` (Unix seconds, UTC; ``None`` where ``tweet_info`` has no integer)."""

    tweet_id: str
    entity_id: str
    text: str
    timestamp: int | None = None


def load_texts(root: str | os.PathLike, split: str = "training", languages: tuple[str, ...] = ("EN",)) -> tuple[list[RawTweet], LoadReport]:
    """Every tweet of a split in ``languages`` with a non-empty text, labelled or not (unrelated
    tweets and tweets without polarity included): the unlabelled text of domain-adaptive
    pretraining and of distillation transfer sets.

    Returns:
        ``(tweets, report)``; the report counts kept tweets and drops (``not_<lang>``,
        ``empty_text``, ``missing_text``) and the repaired file defects.

    Raises:
        DataError: missing directory or file, malformed row (file and line named), no tweets.
    """
    split_dir = find_split_dir(root, split)
    report = LoadReport(str(split_dir))
    out: list[RawTweet] = []
    for info_path in sorted((split_dir / "tweet_info").glob("*.dat")):
        entity = info_path.stem
        report.entities += 1
        text_path = split_dir / "tweet_text" / f"{entity}.tsv"
        texts: dict[str, str] = {}
        for _, f in _read_table(text_path, TEXT_COLUMNS, report):
            if f[3].strip() or f[0] not in texts:
                texts[f[0]] = f[3]
        seen: set[str] = set()
        for _, f in _read_table(info_path, INFO_COLUMNS, report):
            tweet_id, language, ts = f[0], f[4], f[5]
            if tweet_id in seen:
                continue
            seen.add(tweet_id)
            if language not in languages:
                report.dropped[f"not_{'_'.join(languages)}"] += 1
            elif tweet_id not in texts:
                report.dropped["missing_text"] += 1
            elif not texts[tweet_id].strip():
                report.dropped["empty_text"] += 1
            else:
                out.append(RawTweet(tweet_id, entity, texts[tweet_id], int(ts) if ts.strip().isdigit() else None))
    report.kept = len(out)
    if not out:
        raise DataError(f"{split_dir}: no tweets in {', '.join(languages)} with text")
    return out, report

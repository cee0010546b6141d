"""Tweet normalization: one function, used identically by training, export validation and
the on-device runtime (the bundle manifest records :data:`NORMALIZATION_VERSION`).

Choices, in the order applied by :func:`normalize_tweet`:

1. **HTML entities** are unescaped (``&amp;`` -> ``&``): the Twitter API of 2012 returned
   entity-escaped text, and a WordPiece vocabulary has no ``&amp;`` token.
2. **Control and format characters** (Unicode categories Cc, Cf, Cs, Co, Cn: NUL, escape codes,
   zero-width joiners, lone surrogates) become a space; tabs and newlines are whitespace.
3. **URLs** (``http://``, ``https://``, ``www.``) become the token ``http``: the link target is
   not visible to the model anyway and raw URLs waste many WordPiece tokens. Same convention as
   TweetEval (Barbieri et al., 2020, cardiffnlp preprocessing).
4. **@mentions** become ``@user`` (TweetEval convention): usernames carry no polarity and are
   near-unique. The entity's own account stays recognisable only through the rest of the text.
5. Hashtags, emoji, case and punctuation are kept: the uncased tokenizer lowercases, and
   ``#fail`` carries polarity.
6. **Whitespace** runs collapse to one space; the text is stripped.
7. The result is cut to :data:`MAX_TEXT_CHARS` characters, so a 10,000-character input costs
   no more tokenizer time than a tweet; the model sees at most ``max_seq_len`` tokens anyway.
"""

from __future__ import annotations

import html
import re
import unicodedata

from edgerep.errors import InputTextError

#: Bump when the output of :func:`normalize_tweet` changes for any input.
NORMALIZATION_VERSION = "1"

#: Upper bound on the normalized text length, in characters (a tweet of 2012 had <= 140).
MAX_TEXT_CHARS = 1000

#: Upper bound on a normalized entity name, in characters (RepLab's longest query is 23).
MAX_ENTITY_CHARS = 100

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"(?<![\w@])@\w{1,30}")
_SPACE = re.compile(r"\s+")
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def _strip_controls(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(" " if unicodedata.category(ch) in _CONTROL_CATEGORIES else ch for ch in text)


def normalize_tweet(text: str) -> str:
    """Normalize one tweet for the polarity model (see the module docstring for each step).

    Args:
        text: raw tweet text, any length.

    Returns:
        The normalized text, at most :data:`MAX_TEXT_CHARS` characters; ``""`` when nothing
        but whitespace, controls or nothing at all was given.

    Raises:
        TypeError: ``text`` is not a ``str`` (decode bytes first; invalid UTF-8 is the caller's
            to report, with the file and line it came from).
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize_tweet expects str, got {type(text).__name__}")
    # Bound the work first: a hostile 1 MB input is cut before any regex runs over it.
    text = text[: MAX_TEXT_CHARS * 4]
    text = html.unescape(text)
    text = _strip_controls(text)
    text = _URL.sub("http", text)
    text = _MENTION.sub("@user", text)
    text = _SPACE.sub(" ", text).strip()
    return text[:MAX_TEXT_CHARS].rstrip()


def normalize_entity(name: str) -> str:
    """Normalize an entity name (the first segment of an entity-conditioned input).

    The same steps as :func:`normalize_tweet` (a name is text a user typed), cut to
    :data:`MAX_ENTITY_CHARS` characters.

    Args:
        name: the entity's name as a reputation team writes it, e.g. ``"BMW"``, ``"Bank of America"``.

    Returns:
        The normalized name, never empty.

    Raises:
        InputTextError: ``name`` is not a str, or is empty or only whitespace after normalization.
    """
    if not isinstance(name, str):
        raise InputTextError(f"entity must be a string, got {type(name).__name__}")
    out = normalize_tweet(name)[:MAX_ENTITY_CHARS].rstrip()
    if not out:
        raise InputTextError('entity is empty or only whitespace; give the name of the entity monitored (e.g. "BMW")')
    return out

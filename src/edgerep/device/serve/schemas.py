"""The request and answer bodies of ``edgerep serve`` (pydantic models) and the mapping of
validation errors to documented answers."""

# No ``from __future__ import annotations`` here: FastAPI and pydantic resolve the endpoints'
# and models' annotations at definition time, inside create_app.
import re
from typing import Any, Literal

from edgerep import LABELS
from edgerep.device.serve.config import ServeConfig
from edgerep.device.text import normalize_entity, normalize_tweet
from edgerep.errors import InputTextError

EXPECTED_BODY = 'expected a JSON object with "text": "a tweet" or "texts": ["tweet", ...]'
_EMPTY_TEXT = "empty after normalization (only whitespace or control characters)"
_SURROGATE = re.compile("[\ud800-\udfff]")


def api_models(relatedness: bool, entity_conditioned: bool, cfg: ServeConfig) -> dict:
    """The request and answer bodies of the API as pydantic models, for one bundle.

    ``ClassifyRequest`` holds exactly one of ``text`` (str, 1..``max_text_chars``) and ``texts``
    (1..``max_texts`` of them), plus ``entity`` (required) for an entity-conditioned bundle and
    no other field; a text or entity empty after normalization fails with error type
    ``empty_text`` / ``invalid_entity``. ``Prediction`` is ``{"label", "probabilities"}`` with
    one probability per polarity label (float in [0, 1]), and for a bundle that decides
    ``relatedness`` also ``related`` (bool) and ``p_related`` (float in [0, 1]); ``Predictions`` wraps a list of them;
    ``Health``, ``Metrics`` and ``ErrorAnswer`` describe the other answers.

    Returns:
        ``{"ClassifyRequest", "Prediction", "Predictions", "Health", "Metrics", "ErrorAnswer"}``
        -> model class.
    """
    return {"ClassifyRequest": _request_model(entity_conditioned, cfg), **_prediction_models(relatedness), **_status_models()}


def _lone_surrogates_to_space(v):
    """JSON may escape lone surrogates ("\\ud800"); pydantic refuses such a str, and
    normalize_tweet turns them into a space anyway (:mod:`edgerep.device.text`), so the answer
    stays classify's."""
    return _SURROGATE.sub(" ", v) if isinstance(v, str) else v


def _request_model(entity_conditioned: bool, cfg: ServeConfig):
    from typing import Annotated

    from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator
    from pydantic_core import PydanticCustomError

    def check_text(t: str) -> str:
        if not normalize_tweet(t):
            raise PydanticCustomError("empty_text", _EMPTY_TEXT)
        return t

    def check_entity(e: str) -> str:
        try:
            normalize_entity(e)
        except InputTextError as exc:
            raise PydanticCustomError("invalid_entity", str(exc)) from None
        return e

    def no_default(schema: dict) -> None:  # an absent field is absent, not null, in the schema
        schema.pop("default", None)

    Text = Annotated[
        str, BeforeValidator(_lone_surrogates_to_space), Field(min_length=1, max_length=cfg.max_text_chars), AfterValidator(check_text)
    ]
    one_of = [{"required": ["text"]}, {"required": ["texts"]}]

    class ClassifyRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": one_of})  # type: ignore[dict-item]
        text: Text = Field(  # type: ignore[assignment]  # absent, not null: see the validator
            None, description="One tweet (give this or `texts`).", json_schema_extra=no_default, examples=["Great service from @BMW today!"]
        )
        texts: Annotated[list[Text], Field(min_length=1, max_length=cfg.max_texts)] = Field(
            None,  # type: ignore[arg-type]  # absent, not null: see the validator
            description=f"1 to {cfg.max_texts} tweets (give this or `text`).",
            json_schema_extra=no_default,
        )

        @model_validator(mode="after")
        def _exactly_one(self):
            if (self.text is None) == (self.texts is None):
                raise PydanticCustomError("text_or_texts", EXPECTED_BODY)
            return self

    if not entity_conditioned:
        return ClassifyRequest
    return create_model(
        "ClassifyRequest",
        __base__=ClassifyRequest,
        entity=(
            Annotated[
                str,
                BeforeValidator(_lone_surrogates_to_space),
                Field(
                    min_length=1,
                    max_length=cfg.max_text_chars,
                    description="The entity every text is about (the bundle is entity-conditioned).",
                    examples=["BMW"],
                ),
                AfterValidator(check_entity),
            ],
            ...,
        ),
    )


def _prediction_models(relatedness: bool) -> dict:
    from typing import Annotated

    from pydantic import BaseModel, Field, create_model

    Probability = Annotated[float, Field(ge=0, le=1)]
    Probabilities = create_model("Probabilities", **{lab: (Probability, ...) for lab in LABELS})  # type: ignore[call-overload]
    relatedness_fields = {"related": (bool, ...), "p_related": (Probability, ...)} if relatedness else {}

    class PolarityPrediction(BaseModel):
        label: Literal[LABELS]  # type: ignore[valid-type]
        probabilities: Probabilities  # type: ignore[valid-type]

    Prediction = create_model("Prediction", __base__=PolarityPrediction, **relatedness_fields)  # type: ignore[call-overload]

    Predictions = create_model("Predictions", predictions=(list[Prediction], ...))  # type: ignore[valid-type]
    return {"Prediction": Prediction, "Predictions": Predictions}


def _status_models() -> dict:
    from pydantic import BaseModel, Field

    class ModelInfo(BaseModel):
        bundle: str
        backend: str
        quantization: str | None
        labels: list[str]
        max_seq_len: int
        size_mb: float
        model_sha256: str
        source: str | None
        entity_conditioned: bool

    class Health(BaseModel):
        status: Literal["ok"]
        uptime_s: float
        auth: bool = Field(description="Whether requests other than /health and /openapi.json need a bearer token.")
        model: ModelInfo | None = Field(None, description="The bundle served (only for authenticated callers when auth is on).")

    class LatencyWindow(BaseModel):
        window: int
        p50: float | None = None
        p90: float | None = None
        p99: float | None = None
        max: float | None = None

    class Metrics(BaseModel):
        uptime_s: float
        requests_total: int
        requests_by_status: dict[str, int]
        texts_classified: int
        batches: int
        mean_batch_texts: float | None
        queue_texts: int
        inference_busy_percent: float | None
        slow_connections_dropped: int
        latency_ms: LatencyWindow
        auth: bool
        model: ModelInfo
        config: dict[str, Any]

    class ErrorItem(BaseModel):
        type: str
        loc: list[str | int]
        msg: str

    class ErrorAnswer(BaseModel):
        error: str = Field(description="One line naming the field (`texts[3]`); never the text itself.")
        detail: list[ErrorItem] = Field(default_factory=list, description="FastAPI's validation errors, without the input values.")

    return {"Health": Health, "Metrics": Metrics, "ErrorAnswer": ErrorAnswer}


_STATUS_413 = {"string_too_long", "too_long"}


def validation_answer(errors: list[dict], entity_conditioned: bool) -> tuple[int, str, list[dict]]:
    """Map FastAPI's request validation errors to ``(status, message, detail)``.

    ``status``: 400 when the body is not JSON, 413 when a text, the entity or the list is too
    long, else 422. ``message``: one line for the first error of that status, naming the field
    (``"text"``, ``texts[3]``, ``"entity"``). ``detail``: each error's ``type``, ``loc`` and
    ``msg`` — its ``input`` (the tweet) is dropped.
    """

    def status(e: dict) -> int:
        return 400 if e["type"] == "json_invalid" else 413 if e["type"] in _STATUS_413 else 422

    if not errors:
        return 422, EXPECTED_BODY, []
    worst = min(errors, key=lambda e: {400: 0, 413: 1, 422: 2}[status(e)])  # the first of the gravest
    code = status(worst)
    detail = [{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in errors]
    return code, _message(worst, entity_conditioned), detail


def _message(e: dict, entity_conditioned: bool) -> str:
    """One line for one pydantic/FastAPI error (see :func:`validation_answer`)."""
    loc, kind, ctx, value = list(e["loc"])[1:], e["type"], e.get("ctx") or {}, e.get("input")
    if kind == "json_invalid":
        return f"body is not valid JSON: {ctx.get('error', e['msg'])} at character {loc[0] if loc else 0}"
    if not loc or kind == "text_or_texts":
        return EXPECTED_BODY
    name = loc[0]
    where = f"{name}[{loc[1]}]" if len(loc) > 1 else f'"{name}"'
    if name == "entity" and kind == "missing":
        return '"entity": required: this bundle is entity-conditioned; name the entity the tweets are about'
    if kind == "extra_forbidden":
        if name == "entity":
            return '"entity": this bundle was trained without entity conditioning and takes no entity'
        return f'{where}: unknown field; expected "text" or "texts"' + (' and "entity"' if entity_conditioned else "")
    if kind == "string_type":
        return f"{where}: expected a string, got {type(value).__name__}"
    if kind == "list_type":
        return f"{where}: expected a list of strings, got {type(value).__name__}"
    if kind == "too_short":
        return f"{where}: empty list"
    if kind == "too_long":
        return f"{where}: {ctx.get('actual_length', '?')} texts, at most {ctx.get('max_length')} per request"
    if kind == "string_too_long":
        n = f"{len(value):,}" if isinstance(value, str) else "too many"
        return f"{where}: {n} characters, at most {ctx.get('max_length'):,}"
    if kind in ("string_too_short", "empty_text"):
        return f"{where}: {_EMPTY_TEXT}"
    return f"{where}: {e['msg']}"

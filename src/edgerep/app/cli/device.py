"""Device commands: ``classify``, ``batch`` and ``serve`` (the light runtime; no torch)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from edgerep import LABELS
from edgerep.app.cli.options import JsonFlag, Threads, _print_json, app, err, out
from edgerep.errors import EdgerepError, InputTextError
from edgerep.io import read_bytes
from edgerep.registry import (
    BATCH_ENGINES,
    BATCH_FORMATS,
)

# ----------------------------------------------------------------------------- classify


def _iter_inputs(text: str | None, file: Path | None):
    """Yield ``(where, text or None, error or None, entity or None)`` for each input; a JSON line's
    ``"entity"`` is the only per-input entity."""
    if text is not None:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            yield "argument", None, "text is not valid UTF-8", None
            return
        yield "argument", text, None, None
        return
    if file is not None:
        raw = read_bytes(file, InputTextError)
        if raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        for i, line in enumerate(raw.splitlines(), 1):
            try:
                s = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield f"{file}:{i}", None, f"invalid UTF-8 at byte {exc.start}", None
                continue
            if s.strip():
                yield f"{file}:{i}", s, None, None
        return
    for i, line in enumerate(sys.stdin.buffer, 1):
        where = f"stdin:{i}"
        if not line.strip():
            continue
        try:
            obj = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            yield where, None, f"invalid UTF-8 at byte {exc.start}", None
            continue
        except json.JSONDecodeError as exc:
            yield where, None, f'not a JSON line ({exc.msg}); expected {{"text": ...}} or a JSON string', None
            continue
        if isinstance(obj, dict) and isinstance(obj.get("text"), str):
            entity = obj.get("entity")
            if entity is not None and not isinstance(entity, str):
                yield where, None, f'"entity": expected a string, got {type(entity).__name__}', None
            else:
                yield where, obj["text"], None, entity
        elif isinstance(obj, str):
            yield where, obj, None, None
        else:
            yield where, None, 'expected {"text": "...", "entity": "..."} or a JSON string', None


def _bundle_and_text(first: str | None, second: str | None) -> tuple[Path | None, str | None]:
    """Split ``classify``'s positional arguments into (bundle directory or None, tweet or None).

    Two arguments are BUNDLE TEXT. One argument is a bundle when it names an existing directory,
    else the tweet (the shipped model classifies it).
    """
    if second is not None:
        return Path(first or ""), second
    if first is not None and Path(first).is_dir():
        return Path(first), None
    return None, first


BundleOrText = Annotated[
    str | None,
    typer.Argument(
        metavar="BUNDLE",
        help="Bundle directory (model.tflite, tokenizer.json, manifest.json); leave it out for the shipped model "
        "(one argument that is not a directory is the tweet).",
    ),
]
TweetText = Annotated[str | None, typer.Argument(metavar="TEXT", help="Tweet to classify. Omit to read --file, or JSON lines from stdin.")]
EntityName = Annotated[
    str | None, typer.Option(help='The entity the tweets are about (entity-conditioned bundles; a JSON line\'s "entity" overrides it).')
]
LogitsFlag = Annotated[
    bool, typer.Option("--logits", help="With --json: add each tweet's raw logits (float32, in label order) to its line.")
]


@app.command()
def classify(
    bundle_or_text: BundleOrText = None,
    text: TweetText = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Text file, one tweet per line (UTF-8).")] = None,
    entity: EntityName = None,
    threads: Threads = None,
    as_json: JsonFlag = False,
    logits: LogitsFlag = False,
) -> None:
    """Classify tweets on this device with the light LiteRT runtime (no torch).

    A bundle trained with --relatedness also says whether each tweet is about the entity
    (related, P(related)); its polarity probabilities are then those given that it is.

    \b
    Examples:
      edgerep classify "Great service from @BMW today!" --entity BMW     (the shipped model)
      edgerep classify runs/default/bundles/recommended --entity BMW "BMW beats Audi in sales"
      edgerep classify BUNDLE --file tweets.txt --entity "Bank of America" --json
      echo '{"text": "HSBC fined again", "entity": "HSBC"}' | edgerep classify BUNDLE --json
    """
    from edgerep.device.runtime import PolarityClassifier
    from edgerep.device.shipped import resolve_bundle
    from edgerep.device.text import normalize_entity

    bundle_dir, text = _bundle_and_text(bundle_or_text, text)
    bundle = resolve_bundle(bundle_dir)
    if text is not None and file is not None:
        raise typer.BadParameter("give TEXT or --file, not both")
    if logits and not as_json:
        raise typer.BadParameter("--logits adds a field to the JSON lines: give --json too")
    if text is None and file is None and sys.stdin.isatty():
        raise typer.BadParameter("give TEXT, --file, or JSON lines on stdin")
    clf = PolarityClassifier(bundle, num_threads=threads)
    if entity is not None:
        normalize_entity(entity)  # an empty name is one error, not one per tweet
        if not clf.entity_conditioned:
            raise InputTextError(f"--entity: {bundle} was trained without entity conditioning and takes no entity; leave --entity out")
    elif clf.entity_conditioned and (text is not None or file is not None):
        raise InputTextError(f"{bundle} is entity-conditioned: give --entity NAME, the entity the tweets are about")
    failures = total = 0
    related_columns = ("related",) if clf.relatedness else ()
    table = None if as_json else Table("input", *related_columns, "label", *LABELS, "text")
    for where, s, error, line_entity in _iter_inputs(text, file):
        total += 1
        pred = None
        if error is None:
            try:
                pred = clf.classify(s, line_entity if line_entity is not None else entity)
            except InputTextError as exc:
                error = str(exc)
        if error is not None:
            failures += 1
            err.print(f"error: {escape(where)}: {escape(error)}", highlight=False)
            if as_json:
                sys.stdout.write(json.dumps({"input": where, "error": error}) + "\n")
            continue
        assert pred is not None  # an error above continues the loop
        if as_json:
            line = {"input": where, **pred.to_dict()}
            if logits:
                line["logits"] = [float(v) for v in pred.logits]
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
        else:
            preview = s if len(s) <= 60 else s[:57] + "..."
            assert table is not None  # made when not as_json
            related = (f"{'yes' if pred.related else 'no'} {pred.p_related:.3f}",) if clf.relatedness else ()
            table.add_row(where, *related, pred.label, *(f"{pred.probabilities[lab]:.3f}" for lab in LABELS), preview)
    if table is not None and table.row_count:
        out.print(table)
    if total == 0:
        raise EdgerepError("no input text given")
    if failures:
        raise typer.Exit(1)


# ----------------------------------------------------------------------------- batch


@app.command()
def batch(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help=f"Input files ({', '.join(BATCH_FORMATS)}): .jsonl/.ndjson/.json hold JSON lines, .txt one tweet a line; "
            "or a RepLab 2013 corpus folder (its training split's English tweets, with entity and timestamp)."
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output directory: one Parquet file per shard, _edgerep_batch.json, summary.json.")
    ],
    bundle: Annotated[Path | None, typer.Option(help="Bundle directory (LiteRT or ONNX Runtime; default: the shipped model).")] = None,
    text_field: Annotated[str, typer.Option(help="Column/key holding the tweet text.")] = "text",
    id_field: Annotated[str, typer.Option(help="Column/key holding the tweet id (absent: FILE:LINE).")] = "id",
    entity_field: Annotated[str, typer.Option(help="Column/key holding the entity name (entity-conditioned bundles).")] = "entity",
    time_field: Annotated[
        str,
        typer.Option(help="Column/key holding the tweet's time (Unix seconds or ISO 8601; carried into the output for edgerep monitor)."),
    ] = "time",
    entity: Annotated[str | None, typer.Option(help="Entity for rows that name none (entity-conditioned bundles).")] = None,
    shard_size: Annotated[int, typer.Option(min=1, help="Rows per output shard (the unit of resumption).")] = 50_000,
    engine: Annotated[
        str, typer.Option(help=f"{' or '.join(BATCH_ENGINES)}: worker processes here, or Ray Data actors (pip install 'edgerep[ray]').")
    ] = BATCH_ENGINES[0],
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes or Ray actors, 1 LiteRT thread each (default: cores).")
    ] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster to join: auto or ray://HOST:PORT (default: start a local one).")] = None,
    keep_text: Annotated[
        bool, typer.Option("--keep-text", help="Write each tweet's text into the output (for edgerep monitor --show-text).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Classify a tweet archive into Parquet shards, resumably, on this machine or a Ray cluster.

    Re-running the same command skips finished shards; rows with unusable text are written with an error, never dropped.

    \b
    Example: edgerep batch archive.jsonl -o runs/archive --bundle runs/default/bundles/recommended --entity BMW
    """
    from edgerep.app.batch import BatchConfig, run_batch
    from edgerep.device.shipped import resolve_bundle

    cfg = BatchConfig(
        text_field=text_field,
        id_field=id_field,
        entity_field=entity_field,
        time_field=time_field,
        entity=entity,
        shard_size=shard_size,
        engine=engine,
        workers=workers,
        address=address,
        keep_text=keep_text,
    )
    summary = run_batch(inputs, output, resolve_bundle(bundle), cfg)
    if as_json:
        _print_json(summary)
        return
    labels = ", ".join(f"{k} {v:,}" for k, v in summary["labels"].items())
    rate = f", {summary['tweets_per_s_this_run']:,.0f} tweets/s" if summary["tweets_per_s_this_run"] else ""
    out.print(f"{summary['rows']:,} rows in {output} ({labels}; {summary['errors']:,} with an error){rate}", highlight=False)


@app.command()
def monitor(
    outputs: Annotated[list[Path], typer.Argument(help="Output folders of edgerep batch (one bundle for all).")],
    out_dir: Annotated[Path, typer.Option("--output", "-o", help="Folder for monitor.json, dashboard.html and edgerep.log.")],
    window: Annotated[str, typer.Option(help="Time window: day, week or month (UTC; weeks start on Monday).")] = "week",
    min_tweets: Annotated[int, typer.Option(min=1, help="A window with fewer tweets shows its count, not shares.")] = 30,
    method: Annotated[
        str,
        typer.Option(help="Share shown and alerted on: cc (count labels), pcc (mean probability), acc (adjusted count), em (Saerens EM)."),
    ] = "pcc",
    baseline_windows: Annotated[int, typer.Option(min=3, help="Previous windows pooled into an entity's baseline.")] = 8,
    false_alarms: Annotated[
        float, typer.Option("--false-alarms-per-year", help="Alert threshold: expected false alarms per entity-year (Bonferroni).")
    ] = 0.5,
    evaluation: Annotated[
        Path | None,
        typer.Option(
            help="The bundle's evaluation record (edgerep evaluate -o) for acc and em; default: evaluation.json beside the bundle."
        ),
    ] = None,
    show_text: Annotated[
        bool,
        typer.Option("--show-text", help="Give each alert's most negative tweets with their text (a batch output made with --keep-text)."),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """An entity's reputation over time: polarity shares per entity and window, quantified, with alerts and a dashboard.

    \b
    Example: edgerep batch ../shared/data/replab2013 -o runs/archive
             edgerep monitor runs/archive -o runs/monitor --window week
    """
    from edgerep.app.monitor import MonitorConfig
    from edgerep.app.monitor import monitor as do_monitor

    cfg = MonitorConfig(
        window=window,
        min_tweets=min_tweets,
        method=method,
        baseline_windows=baseline_windows,
        false_alarms_per_year=false_alarms,
        evaluation=str(evaluation) if evaluation else None,
        show_text=show_text,
    )
    record = do_monitor(outputs, out_dir, cfg)
    if as_json:
        _print_json(record)
        return
    table = Table("entity", "related tweets", "unrelated", "windows", "alerts", f"last negative share ({record['settings']['method']})")
    for ent in record["entities"]:
        shared = [w for w in ent["windows"] if "shares" in w and record["settings"]["method"] in w["shares"]]
        last = shared[-1]["shares"][record["settings"]["method"]]["NEGATIVE"] if shared else None
        n_alerts = sum(a["entity"] == ent["entity"] for a in record["alerts"])
        table.add_row(
            escape(ent["entity"]),
            f"{ent['tweets']:,}",
            f"{ent.get('unrelated', 0):,}",
            str(len(ent["windows"])),
            str(n_alerts),
            "too few tweets" if last is None else f"{last[0]:.1%} ({last[1]:.1%}-{last[2]:.1%})",
        )
    out.print(table)
    out.print(f"dashboard: {out_dir / 'dashboard.html'}  record: {out_dir / 'monitor.json'}", highlight=False)


@app.command()
def serve(
    bundle: Annotated[Path | None, typer.Argument(help="Bundle directory to serve (default: the shipped model).")] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on (loopback by default; 0.0.0.0 or a LAN address needs --token-file or --insecure).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free port, printed at start).")] = 8000,
    token_file: Annotated[
        Path | None,
        typer.Option(
            envvar="EDGEREP_TOKEN_FILE",
            show_envvar=True,
            help="File whose first line is the bearer token every request but GET /health and /openapi.json needs (Authorization: Bearer <token>; at least 16 characters).",
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="Allow a network-reachable --host without --token-file (anyone on that network can use the API)."),
    ] = False,
    threads: Threads = None,
    max_batch: Annotated[int, typer.Option(min=1, help="Most texts in one inference call (micro-batching).")] = 32,
    max_wait_ms: Annotated[float, typer.Option(min=0, help="Wait this long for more requests to batch (ms).")] = 2.0,
    max_body_kb: Annotated[int, typer.Option(min=1, help="Largest request body (KiB): 413 beyond.")] = 1024,
    max_texts: Annotated[int, typer.Option(min=1, help="Most texts per request: 413 beyond.")] = 256,
    request_timeout_s: Annotated[
        float,
        typer.Option(min=0.1, help="A connection must deliver a whole request within this many seconds, else it is closed (slow clients)."),
    ] = 10.0,
    keep_alive_s: Annotated[float, typer.Option(min=0.1, help="Close an idle keep-alive connection after this many seconds.")] = 5.0,
    max_connections: Annotated[int, typer.Option(min=1, help="Open connections beyond which requests get a 503.")] = 512,
    access_log: Annotated[bool, typer.Option(help="Log every request: method, path, status (never the tweet).")] = False,
) -> None:
    """Local HTTP API: POST /classify, GET /health, GET /metrics (schema: GET /openapi.json) — no network beyond the socket.

    \b
    Example: edgerep serve --port 8000     (the shipped model; or edgerep serve runs/default/bundles/recommended)
             curl -s localhost:8000/classify -H 'Content-Type: application/json' -d '{"text": "Great service from @BMW today!", "entity": "BMW"}'
    On a LAN: edgerep serve BUNDLE --host 0.0.0.0 --token-file ~/.config/edgerep/token (docs/usage/serving-network.md)
    """
    from edgerep.device.serve import ServeConfig, is_loopback, read_token
    from edgerep.device.serve import serve as do_serve
    from edgerep.device.shipped import resolve_bundle

    bundle = resolve_bundle(bundle)

    cfg = ServeConfig(
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_body_bytes=max_body_kb * 1024,
        max_texts=max_texts,
        threads=threads,
        request_timeout_s=request_timeout_s,
        keep_alive_s=keep_alive_s,
        max_connections=max_connections,
    )
    token = read_token(token_file) if token_file is not None else None
    if token is None and insecure and not is_loopback(host):
        err.print(f"[yellow]warning:[/] listening on {host} without a token (--insecure): anyone on that network can use the API")

    def announce(url: str) -> None:
        auth = "bearer token required" if token else "no authentication"
        err.print(f"serving {bundle} on {url}  (POST /classify, GET /health, GET /metrics; {auth}; Ctrl-C stops)", highlight=False)

    do_serve(bundle, host, port, cfg, access_log=access_log, announce=announce, token=token, insecure=insecure)

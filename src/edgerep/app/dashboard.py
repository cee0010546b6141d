"""The monitoring dashboard: one self-contained HTML page from an ``edgerep.monitor`` record.

plotly.js is inlined once (the page opens offline, no network); each entity's timeline is a
plotly figure with the three polarity shares of the record's chosen method, their 95% intervals
as bands, the related tweet count per window as bars (windows with too few tweets have a bar and
no share), stacked with the unrelated count where the bundle decides relatedness, and the alerts
marked. Every text from the record is HTML-escaped.
"""

from __future__ import annotations

import datetime as dt
import html

from edgerep import LABELS

COLOURS = {"NEGATIVE": "#c0392b", "NEUTRAL": "#7f8c8d", "POSITIVE": "#27ae60"}


def _day(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d")


def _band(colour: str) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},0.15)"


def entity_figure(entity: dict, method: str):
    """The plotly figure of one entity's timeline (shares by ``method`` with bands, counts, alerts).

    Args:
        entity: one item of the record's ``entities`` (``entity``, ``windows``).
        method: a method present in the windows' ``shares``.

    Returns:
        ``plotly.graph_objects.Figure``.
    """
    import plotly.graph_objects as go

    wins = entity["windows"]
    x = [_day(w["start"]) for w in wins]
    fig = go.Figure()
    counts = [("related tweets", "related", [w["tweets"] for w in wins], "rgba(52,73,94,0.18)")]
    if any(w.get("unrelated") for w in wins):
        counts.append(("unrelated", "unrelated", [w.get("unrelated", 0) for w in wins], "rgba(149,165,166,0.35)"))
    for name, what, y, colour in counts:
        fig.add_trace(go.Bar(x=x, y=y, name=name, yaxis="y2", marker_color=colour, hovertemplate=f"%{{y}} {what}"))
    for lab in LABELS:
        share = [w["shares"][method][lab][0] if "shares" in w else None for w in wins]
        low = [w["shares"][method][lab][1] if "shares" in w else None for w in wins]
        high = [w["shares"][method][lab][2] if "shares" in w else None for w in wins]
        fig.add_trace(go.Scatter(x=x, y=high, mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip"))
        fig.add_trace(
            go.Scatter(
                x=x,
                y=low,
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor=_band(COLOURS[lab]),
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=share,
                mode="lines+markers",
                name=lab.lower(),
                line={"color": COLOURS[lab]},
                hovertemplate=f"{lab.lower()} %{{y:.1%}}<extra></extra>",
            )
        )
    alerts = [(xi, w) for xi, w in zip(x, wins) if w.get("alert")]
    if alerts:
        fig.add_trace(
            go.Scatter(
                x=[a[0] for a in alerts],
                y=[a[1]["shares"][method]["NEGATIVE"][0] for a in alerts],
                mode="markers",
                name="alert",
                marker={"symbol": "triangle-up", "size": 14, "color": "#e67e22", "line": {"width": 1, "color": "#000"}},
                hovertemplate="alert: negative %{y:.1%}<extra></extra>",
            )
        )
    fig.update_layout(
        height=320,
        margin={"l": 50, "r": 50, "t": 30, "b": 40},
        yaxis={"title": f"share ({method})", "range": [0, 1], "tickformat": ".0%"},
        yaxis2={"title": "tweets", "overlaying": "y", "side": "right", "showgrid": False},
        legend={"orientation": "h", "y": 1.12},
        hovermode="x unified",
        barmode="stack",
    )
    return fig


def _ordered(record: dict) -> list[tuple[int, dict]]:
    """``(index, entity)`` with the entities that alert first (most alerts first), then by name."""
    n_alerts: dict[str, int] = {}
    for a in record["alerts"]:
        n_alerts[a["entity"]] = n_alerts.get(a["entity"], 0) + 1
    return sorted(enumerate(record["entities"]), key=lambda ke: (-n_alerts.get(ke[1]["entity"], 0), ke[1]["entity"].lower()))


def _overview_rows(record: dict, method: str) -> list[str]:
    alerts_by: dict[str, list[dict]] = {}
    for a in record["alerts"]:
        alerts_by.setdefault(a["entity"], []).append(a)
    rows = []
    for k, ent in _ordered(record):
        shared = [w for w in ent["windows"] if "shares" in w]
        last = shared[-1] if shared else None
        prev = shared[-9:-1]
        if last is not None:
            neg = last["shares"][method]["NEGATIVE"]
            now = f"{neg[0]:.1%} ({neg[1]:.1%}–{neg[2]:.1%})" if neg[0] is not None else "–"
            base_vals = [w["shares"][method]["NEGATIVE"][0] for w in prev if w["shares"][method]["NEGATIVE"][0] is not None]
            base = sum(base_vals) / len(base_vals) if base_vals else None
            change = f"{100 * (neg[0] - base):+.1f} pt" if base is not None and neg[0] is not None else "–"
            when = _day(last["start"])
        else:
            now, change, when = "too few tweets in every window", "–", "–"
        n_alerts = len(alerts_by.get(ent["entity"], []))
        cls = ' class="alerting"' if n_alerts else ""
        rows.append(
            f'<tr{cls}><td><a href="#e{k}">{html.escape(ent["entity"])}</a></td>'
            f"<td>{ent['tweets']:,}</td><td>{ent.get('unrelated', 0):,}</td><td>{len(ent['windows'])}</td><td>{when}</td><td>{now}</td><td>{change}</td><td>{n_alerts}</td></tr>"
        )
    return rows


def _alert_texts(alert: dict) -> str:
    """The texts of an alert's most negative tweets (``monitor --show-text``) as an HTML list, escaped."""
    tweets = [t for t in alert.get("top_negative", []) if t.get("text")][:5]
    if not tweets:
        return ""
    return "<ol>" + "".join(f"<li><code>{html.escape(t['id'])}</code> {html.escape(t['text'])}</li>" for t in tweets) + "</ol>"


def render_dashboard(record: dict) -> str:
    """The dashboard HTML of an ``edgerep.monitor`` record (self-contained, plotly.js inlined).

    Raises:
        edgerep.errors.ConfigError: plotly is not installed (``edgerep[monitor]``).
    """
    try:
        import plotly.io as pio
    except ImportError:
        from edgerep.errors import ConfigError

        raise ConfigError("the dashboard needs plotly: pip install 'edgerep[monitor]'") from None
    st = record["settings"]
    method = st["method"] if st["method"] in record["methods"] else "cc"
    parts = []
    for i, (k, ent) in enumerate(_ordered(record)):
        fig = entity_figure(ent, method)
        div = pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False, "responsive": True})
        ent_alerts = [a for a in record["alerts"] if a["entity"] == ent["entity"]]
        items = "".join(
            f"<li>{_day(a['window'])}: {a['negatives']} of {a['tweets']} tweets predicted negative "
            f"(share {a['negative_share']:.1%}, baseline {a['baseline_rate']:.1%}; p = {a['p_value']:.2g} &lt; {a['threshold']:.2g}); "
            f"most negative: {html.escape(', '.join(a['top_negative_ids'][:5]))}{_alert_texts(a)}</li>"
            for a in ent_alerts
        )
        parts.append(
            f'<section id="e{k}"><h2>{html.escape(ent["entity"])}</h2>{div}'
            + (f"<ul class='alerts'>{items}</ul>" if items else "")
            + "</section>"
        )
    rows = record["rows"]
    head = (
        f"{rows['used']:,} classified related tweets with an entity and a time ({rows.get('unrelated', 0):,} unrelated ones left out, "
        f"{rows['errors']:,} error rows, {rows['no_time']:,} without a time); "
        f"windows of one {html.escape(st['window'])} (UTC), shares by {html.escape(method)} where a window holds at least {st['min_tweets']} tweets; "
        f"alerts at p &lt; {record['settings']['alpha']:.3g} ({st['false_alarms_per_year']} expected false alarms per entity-year)."
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>edgerep monitor</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; width: 100%; font-size: 0.9rem; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
tr.alerting td {{ background: #fdebd0; }}
div.overview {{ max-height: 420px; overflow-y: auto; border: 1px solid #ddd; }}
th {{ position: sticky; top: 0; background: #fff; }}
section {{ margin-top: 2rem; }}
ul.alerts {{ font-size: 0.85rem; }}
</style></head><body>
<h1>Reputation monitor</h1>
<p>{head}</p>
<div class="overview"><table><thead><tr><th>entity</th><th>related tweets</th><th>unrelated</th><th>windows</th><th>last window</th><th>negative share (95% interval)</th>
<th>change vs previous 8</th><th>alerts</th></tr></thead><tbody>
{"".join(_overview_rows(record, method))}
</tbody></table></div>
{"".join(parts)}
</body></html>
"""

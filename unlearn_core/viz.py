"""Views of an unlearning run: embedding maps, top-k retrieval galleries, the attack ROC, the
metrics table, and a self-contained HTML report. Pure functions of embeddings, chips and report
dicts; no UI code. Images are inlined as data URIs, so nothing here writes to disk.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from .errors import InvalidParameter
from .features import GALLERY_PARTS
from .metrics import RetrievalRow, forget_top_k
from .privacy import ATTACK_HELP, PRIVACY_COLUMNS, REPORTED_ATTACKS, privacy_rows
from .probes import PROBE_HELP, probe_lines

METRICS = (("mAP", "mAP"), ("rank1", "R@1"), ("rank5", "R@5"), ("cs", "CS"), ("centroid_acc", "centroid acc."),
           ("original_centroid_acc", "centroid acc. (fixed)"), ("head_acc", "head acc."))
SETS = ("forget", "forget_extended", "retain")
TABLE_HELP = {
    "mAP": "Mean average precision: how high a person's other photos rank when one of their photos is the query "
           "(1 = always first). Forgetting should lower it for forgotten people and keep it for everyone else.",
    "R@1": "Share of queries whose most similar photo shows the same person.",
    "R@5": "Share of queries with the same person among their 5 most similar photos.",
    "CS": "Cluster compactness: mean cosine similarity between a person's photos (1 = identical). Forgetting scatters "
          "a person's photos, so it should fall for them.",
    "centroid acc.": "Share of photos nearest to their own person's mean training embedding (under the model shown).",
    "centroid acc. (fixed)": "The same against the original model's mean training embeddings, fixed before unlearning (S0's reading): "
                             "it falls when a person's photos move away from where the original model put them.",
    "head acc.": "Share of photos the model's identity classifier names correctly (forgetting in the classification sense).",
    "forget": "Held-out photos of the forgotten people, searched among the held-out photos of everyone.",
    "forget_extended": "The same, with one-photo strangers added to the gallery as distractors.",
    "retain": "Held-out photos of the retained people, searched among themselves: what forgetting should not harm.",
    "you": "Your check photos, searched in the gallery with all your photos added.",
    "set": "Whose photos are the queries.",
    "metric": "Hover a metric's name for what it measures.",
    "before": "The original model, before unlearning.",
    "after": "The model after unlearning.",
    "retrain": "The reference: the original recipe trained without the forgotten people (what perfect forgetting looks like).",
    "index state": "The service's search index after each half of forgetting: deleting your rows, unlearning the model, both, "
                   "or unlearning with your stored rows left stale (the old model's vectors).",
    "check mAP": "Your check photos (never stored) as queries, embedded by that state's model: do new photos of you still find you?",
    "stored mAP": "The photos the service stores of you as queries, with the vectors the index holds for them: "
                  "do they still find each other? ('deleted' where they were deleted).",
}
"""Short explanations of the metrics tables' headings, metric names and sets (shown on hover)."""
PROJECTIONS = ("tsne", "umap")
FORGET_COLOUR, CORRECT_COLOUR, WRONG_COLOUR = "#d62728", "#2ca02c", "#d62728"


# -- embedding maps ---------------------------------------------------------------------------
def project(points: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """2-D map of L2-normalised rows with t-SNE (sklearn) or UMAP (umap-learn), cosine metric."""
    if method not in PROJECTIONS:
        raise InvalidParameter(f"projection must be one of {PROJECTIONS}, got {method!r}")
    n = len(points)
    if n < 5:
        raise InvalidParameter(f"an embedding map needs at least 5 points, got {n}")
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(2, metric="cosine", init="pca", perplexity=min(30.0, (n - 1) / 3), random_state=seed).fit_transform(points)
    import umap

    return umap.UMAP(n_components=2, metric="cosine", n_neighbors=min(15, n - 1), random_state=seed).fit_transform(points)


def embedding_map(panels: dict[str, np.ndarray], labels: np.ndarray, names: Sequence[str], forget: Iterable[int],
                  method: str = "tsne", seed: int = 0) -> go.Figure:
    """Side-by-side panels (e.g. before / after one or more methods) of the same images, fitted
    as one map so every panel shares the same axes and is comparable.

    ``panels``: title -> (n, d) embeddings of the same n images under one model; ``labels`` index
    ``names``; identities in ``forget`` are drawn as large outlined stars.
    """
    shapes = {x.shape for x in panels.values()}
    if not panels or len(shapes) != 1 or len(labels) != next(iter(shapes))[0]:
        raise InvalidParameter("every panel must embed the same images, one label per image")
    n = len(labels)
    xy = project(np.concatenate(list(panels.values())), method, seed)
    forget = {int(c) for c in forget}
    title = {"tsne": "t-SNE", "umap": "UMAP"}[method]
    fig = make_subplots(1, len(panels), subplot_titles=[f"{title}: {t}" for t in panels], horizontal_spacing=0.04)
    palette = _palette(len(names))
    for c in np.unique(labels):
        mask = labels == c
        is_forget = int(c) in forget
        name = f"{names[c]} (forget)" if is_forget else names[c]
        for col in range(len(panels)):
            pts = xy[col * n:(col + 1) * n][mask]
            fig.add_trace(go.Scatter(
                x=pts[:, 0], y=pts[:, 1], mode="markers", name=name, legendgroup=name, showlegend=col == 0,
                marker=dict(size=11 if is_forget else 6, color=palette[int(c) % len(palette)], symbol="star" if is_forget else "circle",
                            line=dict(width=1.5 if is_forget else 0, color="black"), opacity=1.0 if is_forget else 0.55),
                hovertemplate=f"{html.escape(name)}<extra></extra>"), row=1, col=col + 1)
    fig.update_xaxes(showticklabels=False, matches="x")
    fig.update_yaxes(showticklabels=False, matches="y")
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=40, b=10), legend=dict(font=dict(size=10)))
    return fig


def _palette(n: int) -> list[str]:
    import plotly.express as px

    base = px.colors.qualitative.Dark24 + px.colors.qualitative.Light24
    return [base[i % len(base)] for i in range(max(n, 1))]


def image_uri(chip: np.ndarray, size: int = 96) -> str:
    """A small JPEG data URI of an RGB chip (kept in memory)."""
    image = Image.fromarray(np.asarray(chip, dtype=np.uint8)).resize((size, size), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def gallery_html(rows: Sequence[RetrievalRow], title: str) -> str:
    """A retrieval gallery as HTML: one row per query, hits outlined green (same person) or red."""
    parts = [f'<div class="uc-gallery"><h4>{html.escape(title)}</h4>']
    for row in rows:
        parts.append('<div class="uc-row">')
        parts.append(_tile(row.query_chip, f"query: {row.query_name}", "#555", "uc-query"))
        for rank, hit in enumerate(row.hits, 1):
            mark = "✓" if hit.correct else "✗"
            colour = CORRECT_COLOUR if hit.correct else WRONG_COLOUR
            label = f"#{rank} {hit.similarity:.2f} {mark}<br>{hit.name}"
            parts.append(_tile(hit.chip, label, colour, "uc-hit uc-correct" if hit.correct else "uc-hit uc-wrong"))
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def _tile(chip: np.ndarray, label: str, colour: str, cls: str) -> str:
    caption = "<br>".join(html.escape(p) for p in label.split("<br>"))
    return (f'<figure class="{cls}" style="display:inline-block;margin:2px;text-align:center;font-size:11px;width:100px">'
            f'<img src="{image_uri(chip)}" width="96" height="96" style="border:3px solid {colour};border-radius:4px">'
            f'<figcaption style="overflow:hidden;text-overflow:ellipsis;white-space:nowrap">{caption}</figcaption></figure>')


# -- privacy ----------------------------------------------------------------------------------
ATTACK_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
METHOD_DASHES = ("solid", "dot", "dashdot", "longdashdot")
REFERENCE = "retrain reference"


def roc_figure(privacy_by_method: dict[str, dict]) -> go.Figure | None:
    """The attacks' forget-vs-held-out ROC curves on log-log axes, grouped: one colour per attack,
    solid lines for the (first) unlearned model, dotted / dash-dotted for further methods, dashed
    for the retrain reference (the same for every method, drawn once); chance is the diagonal.
    ``privacy_by_method``: method -> its privacy block; ``None`` when there is none."""
    if not privacy_by_method:
        return None
    styles = {method: METHOD_DASHES[i % len(METHOD_DASHES)] for i, method in enumerate(privacy_by_method)}
    styles[REFERENCE] = "dash"
    colours = {attack: ATTACK_COLOURS[i % len(ATTACK_COLOURS)] for i, attack in enumerate(REPORTED_ATTACKS)}
    curves = []  # (attack, legend label, fpr, tpr)
    for k, (method, privacy) in enumerate(privacy_by_method.items()):
        sides = [(method, "unlearned")] + ([(REFERENCE, "retrain")] if k == 0 else [])
        for attack in REPORTED_ATTACKS:
            for label, side in sides:
                roc = privacy[attack][side]["forget_vs_heldout"]["roc"]
                curves.append((attack, label, np.asarray(roc["fpr"], float), np.asarray(roc["tpr"], float)))
    positive = [v for *_, f, t in curves for v in np.concatenate([f, t]) if np.isfinite(v) and v > 0]
    floor = max(min(positive, default=1e-4), 1e-6)
    fig = go.Figure()
    for attack, label, fpr, tpr in curves:
        keep = np.isfinite(fpr) & np.isfinite(tpr)
        fig.add_trace(go.Scatter(x=np.clip(fpr[keep], floor, 1), y=np.clip(tpr[keep], floor, 1), mode="lines", name=attack,
                                 legendgroup=attack, showlegend=False, line=dict(color=colours[attack], dash=styles[label]),
                                 hovertemplate=f"{html.escape(attack)} · {html.escape(label)}<br>FPR %{{x:.3g}}, TPR %{{y:.3g}}<extra></extra>"))
    for attack, colour in colours.items():  # the legend: one entry per colour, then one per line style
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=attack, legendgroup=attack, line=dict(color=colour)))
    for who, dash in styles.items():
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=who, line=dict(color="#444", dash=dash)))
    fig.add_trace(go.Scatter(x=[floor, 1], y=[floor, 1], mode="lines", name="chance", line=dict(color="#bbb", width=1),
                             hoverinfo="skip"))
    fig.update_xaxes(type="log", title="false positive rate (held-out photos called members)", range=[math.log10(floor), 0])
    fig.update_yaxes(type="log", title="true positive rate (forgotten photos called members)", range=[math.log10(floor), 0])
    fig.update_layout(height=400, margin=dict(l=10, r=10, t=50, b=10),
                      title="Can an attack tell forgotten photos from held-out ones? (ROC, log-log)")
    return fig


def privacy_html(privacy_by_method: dict[str, dict]) -> str:
    """The privacy audit as HTML: per method, its Streisand verdict and a table with one row per
    attack (what it measures and what would be alarming, then each number for the unlearned
    model and the retrain reference), and the tug-of-war and unlearn scores."""
    if not privacy_by_method:
        return "<p>Privacy audit: tick \"Compare with the retrain reference\" to run the membership-inference attacks.</p>"
    head = ('<tr><th rowspan="2">attack: what it measures; what would be alarming</th>'
            + "".join(f'<th colspan="2" title="{html.escape(text)}">{html.escape(label)}</th>' for _, label, text in PRIVACY_COLUMNS)
            + '<th rowspan="2" title="In what share of (retrain, unlearned) pairs of forgotten photos the retrain reference finds '
              'the photo more member-like: above 0.9 the unlearned model overshoots what never training on them gives">'
              'beyond retrain</th>'
            + '<th rowspan="2">Streisand</th></tr><tr>' + '<th>unlearned</th><th>retrain</th>' * len(PRIVACY_COLUMNS) + "</tr>")
    legend = "".join(f"<li><b>{html.escape(label)}</b>: {html.escape(text)}</li>" for _, label, text in PRIVACY_COLUMNS)
    parts = ['<div class="uc-privacy"><p>Membership-inference attacks on the forgotten people, each number for the unlearned '
             "model and for the retrain reference (never trained on them): the closer the two, the better the forgetting. "
             "Brackets: 95% bootstrap intervals; n/r: the sample has too few non-members to resolve that false-positive rate.</p>"
             f'<details><summary>What each column means</summary><ul>{legend}</ul></details>']
    for method, privacy in privacy_by_method.items():
        flag = privacy["streisand"]
        verdict = (f"⚠️ Streisand flag: {html.escape('; '.join(flag['reasons']))}" if flag["flag"]
                   else "no Streisand flag: the removal itself does not stand out")
        body = ""
        for row in privacy_rows(privacy):
            cells = "".join(f"<td>{html.escape(row['unlearned'][key].text())}</td><td>{html.escape(row['retrain'][key].text())}</td>"
                            for key, _, _ in PRIVACY_COLUMNS)
            body += (f"<tr><td class=\"uc-help\"><b>{row['attack']}</b>: {html.escape(ATTACK_HELP[row['attack']])}</td>{cells}"
                     f"<td>{_number(row['beyond_retrain'])}</td><td>{'⚠️ yes' if row['streisand'] else 'no'}</td></tr>")
        tow, us = privacy["tug_of_war"], privacy["unlearn_score"]
        probes = "".join(f"<li><i>{html.escape(name.replace('_', ' '))}</i>: {html.escape(text)}. {html.escape(PROBE_HELP[name])}</li>"
                         for name, text in probe_lines(privacy["deep_forgetting"])) if "deep_forgetting" in privacy else ""
        parts.append(f"<h4>{html.escape(method)}: {verdict}</h4>"
                     f'<div class="uc-scroll"><table class="uc-table uc-privacy-table"><thead>{head}</thead><tbody>{body}</tbody></table></div>'
                     f"<p>RMIA and U-LiRA read {privacy['references']['k']} reference models, half of them trained on the forgotten "
                     "people" + (" and then unlearned with this method" if privacy["references"]["unlearned"] else "") + ".</p>"
                     + (f"<p><b>Deep forgetting</b> (unlearned | retrain):</p><ul>{probes}</ul>" if probes else "")
                     + f"<p>Tug of war (forget vs retain vs test retrieval, 1 = like retrain): {tow['unlearned']:.3f} "
                     f"(original {tow['original']:.3f}). Unlearn score |accuracy on test − on forgotten photos|: "
                     f"{us['unlearned']['score']:.3f} (retrain {us['retrain']['score']:.3f}).</p>")
    return "".join(parts) + "</div>"


def _number(value: float | None) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.3f}"


# -- metrics ----------------------------------------------------------------------------------
def metrics_table(before: dict, afters: dict[str, dict], retrain: dict | None = None,
                  sets: Sequence[str] = SETS, reference_name: str = "retrain") -> tuple[list[str], list[list[Any]]]:
    """Side-by-side rows of ``evaluate()``-style dicts: set, metric, before, [reference,] then for
    each run in ``afters`` its value and its delta to before (and to the reference ``retrain``,
    named ``reference_name``, when given)."""
    headers = ["set", "metric", "before"] + ([reference_name] if retrain else [])
    for name in afters:
        headers += [name, f"Δ {name} − before"] + ([f"Δ {name} − {reference_name}"] if retrain else [])
    rows = []
    for part in sets:
        if part not in before or any(part not in a for a in afters.values()):
            continue
        for key, label in METRICS:
            b = before[part].get(key)
            if b is None:
                continue
            r = retrain.get(part, {}).get(key) if retrain else None
            row = [part, label, _round(b)] + ([_round(r)] if retrain else [])
            for after in afters.values():
                a = after[part].get(key)
                row += [_round(a), _delta(a, b)] + ([_delta(a, r)] if retrain else [])
            rows.append(row)
    return headers, rows


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else _round(a - b)


def before_after_bars(values: dict[str, tuple[float, float]], title: str) -> go.Figure:
    """Grouped bars of (before, after) pairs, one group per label."""
    labels = list(values)
    fig = go.Figure([go.Bar(name=when, x=labels, y=[values[l][i] for l in labels], text=[f"{values[l][i]:.2f}" for l in labels])
                     for i, when in enumerate(("before", "after"))])
    fig.update_layout(barmode="group", height=320, margin=dict(l=10, r=10, t=40, b=10), title=title, yaxis=dict(range=[-0.2, 1.05]))
    return fig


def _round(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


INDEX_STATE_NAMES = {
    "before": ("before", "original model, nothing deleted"),
    "deletion_only": ("deletion only", "{whose} found rows deleted; the model unchanged"),
    "unlearning_only": ("unlearning only", "model unlearned, index re-embedded; nothing deleted"),
    "both": ("both", "model unlearned, index re-embedded, {whose} found rows deleted"),
    "stale": ("stale embeddings", "model unlearned, index re-embedded except {whose} stored rows (old vectors)"),
}


def index_states_table(states: dict[str, dict[str, float]], whose: str = "your") -> tuple[list[str], list[list[Any]]]:
    """``metrics.index_states`` as ``table_html`` headers and rows; ``whose``: the forgotten person
    as the descriptions name them ("your", "the forgotten people's")."""
    columns = [("check mAP", "mAP"), ("check R@1", "rank1"), ("stored mAP", "stored_mAP"), ("stored R@1", "stored_rank1")]
    rows = [[INDEX_STATE_NAMES[state][0], INDEX_STATE_NAMES[state][1].format(whose=whose),
             *(f"{m[key]:.3f}" if key in m else "deleted" for _, key in columns)] for state, m in states.items()]
    return ["index state", "what the service did", *(name for name, _ in columns)], rows


def table_html(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table; headings and cells that ``explain`` knows carry their explanation on hover."""
    head = "".join(f"<th{_title(h)}>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td{_title(v)}>{'' if v is None else html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return (f'<table class="uc-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
            '<p class="uc-hint">Hover a heading, a set or a metric for what it means.</p>')


def explain(text: Any) -> str | None:
    """The explanation of a metrics table's heading, set or metric name (``TABLE_HELP``, and the delta columns)."""
    if not isinstance(text, str):
        return None
    if text.startswith("Δ ") and " − " in text:
        run, reference = text[2:].rsplit(" − ", 1)
        if reference == "retrain":
            return f"{run} minus retrain: the gap to the reference (0 = the same as retraining)."
        return f"{run} minus {reference}: the change unlearning made."
    return TABLE_HELP.get(text)


def _title(value: Any) -> str:
    text = explain(value)
    return "" if text is None else f' title="{html.escape(text)}"'


# -- report -----------------------------------------------------------------------------------
def to_json(report: dict) -> str:
    """The report as JSON (numpy values converted; NaN written as null)."""
    return json.dumps(_plain(report), indent=2, allow_nan=False)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def html_report(title: str, report: dict, figures: Sequence[go.Figure] = (), fragments: Sequence[str] = ()) -> str:
    """One self-contained HTML page: plotly.js inlined once, figures, HTML fragments (tables,
    galleries with data-URI images) and the JSON report at the end."""
    plots = [fig.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False}) for i, fig in enumerate(figures)]
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{REPORT_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>" + "".join(fragments) + "".join(f"<div class='uc-plot'>{p}</div>" for p in plots)
        + f"<h2>Report (JSON)</h2><pre>{html.escape(to_json(report))}</pre></body></html>"
    )


REPORT_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
    ".uc-table{border-collapse:collapse}.uc-table td,.uc-table th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    ".uc-table td.uc-help{text-align:left;white-space:normal;min-width:18em;max-width:30em;font-size:12px}.uc-table [title]{cursor:help}"
    ".uc-privacy-table{font-size:12px}.uc-scroll{overflow-x:auto}"
    ".uc-row{white-space:nowrap;overflow-x:auto}pre{background:#f6f6f6;padding:1em;overflow-x:auto}"
)


def audit_points(ws: Any, n_retain_identities: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(part, row) pairs of the images to map: every forget identity's images and those of
    ``n_retain_identities`` retain identities drawn by seed (train and test images)."""
    rng = np.random.default_rng(seed)
    retain_classes = np.setdiff1d(np.arange(len(ws.classes)), ws.forget_classes)
    keep = set(ws.forget_classes) | set(rng.permutation(retain_classes)[:n_retain_identities].tolist())
    parts, rows = [], []
    for part in ("forget_train", "forget_test", "retain_train", "retain_test"):
        labels = ws.parts[part].labels.cpu().numpy()
        idx = np.flatnonzero(np.isin(labels, list(keep)))
        parts += [part] * len(idx)
        rows += idx.tolist()
    return np.array(parts), np.array(rows, dtype=np.int64)


def audit_maps(ws: Any, models: dict[str, Any], projections: Sequence[str] = PROJECTIONS,
               n_retain_identities: int = 8, seed: int = 0) -> dict[str, go.Figure]:
    """One figure per projection, one panel per model (e.g. "before" and each method), all of
    the same forget + sampled retain images."""
    parts, rows = audit_points(ws, n_retain_identities, seed)
    panels = {}
    for title, model in models.items():
        per_part = {p: ws.embed(model, p) for p in np.unique(parts)}
        panels[title] = np.stack([per_part[p][r] for p, r in zip(parts, rows)])
    labels = np.array([int(ws.parts[p].labels[r]) for p, r in zip(parts, rows)])
    names = ws.identity_names(range(len(ws.classes)))
    return {m: embedding_map(panels, labels, names, ws.forget_classes, m, seed) for m in projections}


def workspace_top_k(ws: Any, model: Any, n_queries: int = 3, k: int = 5) -> list[RetrievalRow]:
    """``metrics.forget_top_k`` of ``model`` on a workspace's test gallery."""
    parts = GALLERY_PARTS
    return forget_top_k({p: ws.embed(model, p) for p in parts}, {p: ws.parts[p].labels.cpu().numpy() for p in parts},
                        {p: ws.parts[p].image_ids for p in parts}, {p: ws.parts[p].chips for p in parts},
                        ws.identity_names(range(len(ws.classes))), ws.forget_classes, n_queries, k)


# -- the attribute task (S3's multi-label unlearning) -------------------------------------------
ATTRIBUTE_NOTE = ("The attribute labels are PSEUDO-labels: LFW has none, so face-api's age/gender and expression nets "
                  "labelled every photo, and only attributes passing a consistency check are used.")
ENTROPY_NOTE = ("How unsure the model is about the forgotten attribute on each test photo (binary entropy of its output: "
                "0 bits = certain, 1 bit = a coin toss). A model that still knows the attribute piles up near 0; "
                "one that forgot it should look like the retrain reference, which never learned it.")
AIA_NOTE = ("Attribute inference attack: a logistic-regression probe trained to read the forgotten attribute from the model's "
            "embeddings of training photos, scored on test photos (balanced accuracy: 0.5 = it cannot tell, 1 = it always can). "
            "The output layer can forget while the embedding still carries the attribute.")


def attribute_runs(report: dict) -> dict[str, dict]:
    """``AttributeAudit.to_json()``'s runs in order: before, retrain, then each method."""
    return {"before": report["before"], "retrain": report["retrain"], **report["methods"]}


def attribute_table(report: dict) -> tuple[list[str], list[list[Any]]]:
    """Test accuracy (balanced accuracy) per attribute for each run, the forgotten one marked, then
    AIA, the forgotten output's entropy, runtime and speed-up over retraining (``table_html`` input)."""
    runs = attribute_runs(report)
    rows: list[list[Any]] = []
    for attr in report["attributes"]:
        name = f"{attr} (forgotten)" if attr == report["forget_attribute"] else f"{attr} (kept)"
        rows.append([name] + [f"{r['attributes'][attr]['accuracy']:.3f} ({r['attributes'][attr]['balanced_accuracy']:.3f})"
                              for r in runs.values()])
    rows.append(["AIA (probe balanced accuracy)"] + [f"{r['aia']:.3f}" for r in runs.values()])
    if all("mia" in r for r in runs.values()):
        rows.append(["MIA AUC (training vs test photos)"] + [f"{r['mia']['auc']:.3f}" for r in runs.values()])
    rows.append(["entropy of the forgotten output (bits)"] + [f"{r['entropy_mean']:.3f}" for r in runs.values()])
    timing = report.get("timing_s", {})
    seconds = [timing.get("train"), timing.get("retrain"), *(r.get("unlearn_s") for r in report["methods"].values())]
    rows.append(["runtime (s)"] + ["–" if s is None else f"{s:.1f}" for s in seconds])
    rows.append(["speed-up vs retrain", "", "1.0"] + [f"{r['speedup']:.1f}" for r in report["methods"].values()])
    return ["attribute: accuracy (balanced accuracy)", *runs], rows


def attribute_entropy_figure(report: dict) -> go.Figure:
    """Histograms of the forgotten attribute's output entropy on the test photos (S3 Fig. 2), one line per run."""
    runs = attribute_runs(report)
    n_bins = len(report["before"]["entropy_hist"])
    centres = (np.arange(n_bins) + 0.5) / n_bins
    fig = go.Figure()
    for i, (name, run) in enumerate(runs.items()):
        counts = np.asarray(run["entropy_hist"], float)
        share = counts / max(counts.sum(), 1)
        dash = "dash" if name == "retrain" else "solid"
        fig.add_trace(go.Scatter(x=centres.tolist(), y=share.tolist(), mode="lines+markers", name=f"{name} (mean {run['entropy_mean']:.2f})",
                                 line=dict(dash=dash, color=ATTACK_COLOURS[i % len(ATTACK_COLOURS)]),
                                 hovertemplate=f"{html.escape(name)}<br>entropy %{{x:.2f}} bits: %{{y:.0%}} of test photos<extra></extra>"))
    fig.update_xaxes(title="entropy of the forgotten attribute's output (bits; 0 = certain, 1 = coin toss)", range=[0, 1])
    fig.update_yaxes(title="share of test photos", rangemode="tozero")
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=50, b=10),
                      title=f"Does the model still know '{report['forget_attribute']}'? Entropy of its output")
    return fig


def attribute_privacy_html(report: dict) -> str:
    """The AIA (and MIA, when measured) per run, with what they mean, and the pseudo-label caveat."""
    runs = attribute_runs(report)
    aia = ", ".join(f"{html.escape(name)} {r['aia']:.3f}" for name, r in runs.items())
    parts = [f"<p><b>Attribute inference attack on '{html.escape(report['forget_attribute'])}'</b>: {aia}.</p>",
             f"<p>{html.escape(AIA_NOTE)}</p>"]
    if all("mia" in r for r in runs.values()):
        mia = ", ".join(f"{html.escape(name)} {r['mia']['auc']:.3f}" for name, r in runs.items())
        parts.append(f"<p><b>Membership inference (AUC, training vs test photos)</b>: {mia}.</p>"
                     f"<p>{html.escape(MIA_NOTE)}</p>")
    parts.append(f"<p>{html.escape(ENTROPY_NOTE)}</p><p><i>{html.escape(ATTRIBUTE_NOTE)}</i></p>")
    return '<div class="uc-privacy">' + "".join(parts) + "</div>"


MIA_NOTE = ("A membership-inference attack scores each photo by the model's BCE loss on the forgotten attribute's label "
            "(lower loss = more member-like) and asks whether training photos score apart from test photos (AUC 0.5 = "
            "indistinguishable). The attribute was forgotten on the training photos, so after forgetting they should "
            "look like test photos, as under the retrain reference.")

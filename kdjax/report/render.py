"""Markdown and HTML of a report dict (kdjax.report.build.build)."""

from __future__ import annotations

import base64
import html
import math
import os
import re
from collections.abc import Mapping
from typing import Any

from kdjax.report.build import judged
from kdjax.report.runs import FALLBACK_RULE
from kdjax.train import stats

FIGURE_TITLES = {
    "forest": "Paired differences with their 95% intervals",
    "learning_val": "Validation metric during training",
    "learning_loss": "Train loss during training",
    "confusion": "Test confusion matrices (summed over seeds/folds)",
}


def _f(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _steps(run: Mapping[str, Any]) -> str:
    b, last = run.get("best_step"), run.get("last_step")
    return f"{_f(b)}/{_f(last)}"


def _p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def stage_table(report: Mapping[str, Any]) -> list[str]:
    """The per-stage summary table (markdown lines)."""
    lines = ["| stage | model | params | runs | test metric, mean +- std | per run | train time (s, sum) "
             "| best / last step per run | converged |", "|---|---|---|---|---|---|---|---|---|"]
    for st in report["stages"].values():
        # several seeds per fold (fold<f>_seed<r>): each value labelled with its run
        label = any("_seed" in r["name"] for r in st["runs"])
        per = ", ".join((f"{r['name']} " if label else "") + _f(r["test"]) for r in st["runs"])
        steps = ", ".join(_steps(r) for r in st["runs"])
        conv = f"{st['converged']}/{st['n']}" if st["converged_known"] else "n/a"
        if st["converged_known"] and st.get("converged_fallback"):
            conv += f" ({FALLBACK_RULE})"  # result.json does not record `converged`
        params = f"{st['params']:,}" if isinstance(st["params"], int) else "n/a"
        ms = stats.mean_std([r["test"] for r in st["runs"]])
        lines.append(f"| {st['stage']} | {st['model']} | {params} | {st['n']} | {st['metric']} {ms} | {per} | "
                     f"{_f(st['train_time_s'], 0)} | {steps} | {conv} |")
    return lines


def comparison_table(report: Mapping[str, Any]) -> list[str]:
    """The paired comparisons table (markdown lines)."""
    if not report["comparisons"] and report.get("missing_comparisons"):
        return ["No comparison has finished runs in both arms yet."]
    if not report["comparisons"]:
        return ["No comparisons (no claim, no stage `baseline` in the config, no `--compare`)."]
    nb_any = any(c["nadeau_bengio"] for c in report["comparisons"])
    head = ("| arm - baseline | role | runs | mean difference | 95% t interval | half-width | p "
            + ("| Nadeau-Bengio 95% interval (n2/n1) | NB half-width " if nb_any else "")
            + "| Holm-adjusted p | verdict |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for c in report["comparisons"]:
        p, nb = c["plain"], c["nadeau_bengio"]
        iv = (f"[{p['ci95_low']:+.4f}, {p['ci95_high']:+.4f}]" if math.isfinite(p["ci95_low"]) else "n/a (1 run)")
        row = (f"| {c['label']} | {c['role']} | {p['n']} | {p['mean']:+.4f} | {iv} | "
               f"{_f(p['half_width'])} | {_p(p['p_value'])} ")
        if nb_any:
            row += (f"| [{nb['ci95_low']:+.4f}, {nb['ci95_high']:+.4f}] ({nb['test_train_ratio']:.3f}) | "
                    f"{_f(nb['half_width'])} " if nb else "| - | - ")
        row += f"| {_p(c.get('holm_p'))} | {c.get('verdict', '-')} |"
        lines.append(row)
    return lines


def verdict_lines(report: Mapping[str, Any]) -> list[str]:
    """The claim, the measured primary difference and the verdict (markdown lines)."""
    claim, verdicts = report.get("claim"), report.get("verdicts") or []
    if claim and not verdicts:
        return [f"No verdict: the claim's comparison {claim['primary']['arm']} - "
                f"{claim['primary']['baseline']} has no finished runs in both arms yet."]
    if not claim:
        return ["No claim: give the config's `claim` (or `--config configs/<recipe>.py`) for a verdict."]
    e = abs(claim["effect"]) * (1 if claim["direction"] == "greater" else -1)
    src = f" ({claim['source']})" if claim.get("source") else ""
    paper = f"; paper: {claim['paper']}" if claim.get("paper") else ""
    c0 = next(c for c in report["comparisons"] if c["role"] == "primary")
    lines = [f"Claim{src}: `{c0['arm']}` - `{c0['baseline']}` on test {c0['metric']} is "
             f"{'above' if e > 0 else 'below'} 0; smallest effect of interest {e:+g}{paper}.", ""]
    prim = [c for c in report["comparisons"] if c["role"] == "primary"]
    for c, v in zip(prim, verdicts, strict=True):
        iv = judged(c)
        which = "Nadeau-Bengio corrected 95% interval" if v["interval"] == "nadeau_bengio" else "paired 95% t interval"
        ci = stats.format_interval(iv).split(" ", 1)[1] if math.isfinite(iv["ci95_low"]) else "(no interval)"
        tail = ""
        if v["verdict"] == "inconclusive":
            excludes_effect = iv["ci95_high"] < e if e > 0 else iv["ci95_low"] > e
            if not v["converged"] and excludes_effect:
                why = ("convergence is not recorded" if not v.get("convergence_known", True) else
                       f"not every run converged by the {FALLBACK_RULE}" if v.get("convergence_fallback")
                       else "not every run converged")
                tail = f" (the interval excludes the effect, but {why}: no 'refuted')"
            elif v["more_runs"]:
                tail = (f"; about {v['runs_to_decide']} paired runs ({v['more_runs']} more) would decide it, "
                        f"if the mean and paired SD stay as observed ({c['plain']['mean']:+.4f}, "
                        f"{c['plain']['std']:.4f})")
            elif v["runs_to_decide"] is None and c["plain"]["n"] > 1:
                tail = "; more runs of this design would not decide it at the observed mean and SD"
        lines += [f"{c['label']}: measured {iv['mean']:+.4f} {ci} ({which}, {iv['n']} paired runs "
                  f"{', '.join(c['runs'])}; half-width {_f(iv['half_width'])}). **Verdict: {v['verdict']}**{tail}.", ""]
    return lines[:-1]


def markdown(report: Mapping[str, Any], figures: Mapping[str, str], level: int = 1) -> str:
    """The whole report as markdown; `figures` maps a figure key to its path relative to the
    markdown file."""
    h = "#" * level
    out = [f"{h} Report: {report['title']}", "",
           f"Runs read from `{report['workdir']}`" + "".join(
               f"; stage `{k}` from `{v}`" for k, v in (report.get("borrowed") or {}).items()) + ".", "",
           f"{h}# Verdict", ""] + verdict_lines(report) + ["", f"{h}# Stages", ""] + stage_table(report)
    if report["other_stages"]:
        out += ["", "Other stages (not trained models): " + ", ".join(
            f"{k} ({n} run{'s' if n > 1 else ''})" for k, n in report["other_stages"].items()) + "."]
    out += ["", f"{h}# Paired comparisons", ""] + comparison_table(report)
    if report.get("missing_comparisons"):
        out += ["", "Not compared (no finished run of " + "; ".join(
            f"{m['arm']} - {m['baseline']}: {', '.join(m['absent'])}" for m in report["missing_comparisons"]) + ")."]
    out += [
        "", "Holm-adjusted p-values cover the secondary comparisons; a comparison is judged by its "
        "Nadeau-Bengio interval when its runs are cross-validation folds. Convergence: result.json's "
        "`converged` (the train loop's rule: no improvement in the last `patience` validations); "
        f"for runs that do not record it, marked ({FALLBACK_RULE}), the best validation step lies in the "
        "first 3/4 of the run."]
    if figures or report.get("picture_notes"):
        out += ["", f"{h}# Pictures", ""] + [x for n in report.get("picture_notes") or [] for x in (n, "")]
        for key, rel in figures.items():
            alt = key if key in FIGURE_TITLES else re.sub(r"[^A-Za-z0-9_]+", "_", key).strip("_")
            out += [f"{FIGURE_TITLES.get(key, key)}:", "", f"![{alt}]({rel})", ""]
    return "\n".join(out).rstrip() + "\n"


_IMG = re.compile(r"!\[([^\]]*)\]\(([^)]+)\)")


def _inline(s: str) -> str:
    s = html.escape(s)
    s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", s)


_NBSP = "\u00a0"


def _cell(c: str) -> str:
    """A table cell for HTML: an interval, `mean +- std` and `(3/4 rule)` kept on one line
    (non-breaking spaces), so narrow columns wrap between values, not inside one."""
    c = re.sub(r"\[[^\]]*\]", lambda m: m.group(0).replace(" ", _NBSP), c)
    c = c.replace(" +- ", f"{_NBSP}±{_NBSP}")
    return c.replace(f" ({FALLBACK_RULE})", f"{_NBSP}({FALLBACK_RULE.replace(' ', _NBSP)})")


def to_html(md: str, base_dir: str) -> str:
    """A self-contained HTML page of the report's markdown (tables, headings, paragraphs; PNGs
    embedded as base64 data, read relative to `base_dir`)."""
    body, table = [], None
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            cells = [_cell(c.strip()) for c in line.strip().strip("|").split("|")]
            if table is None:
                table = [f"<tr>{''.join(f'<th>{_inline(c)}</th>' for c in cells)}</tr>"]
            elif not set("".join(cells)) <= set("-: "):
                table.append(f"<tr>{''.join(f'<td>{_inline(c)}</td>' for c in cells)}</tr>")
            continue
        if table is not None:
            body.append("<table>" + "".join(table) + "</table>")
            table = None
        if m := re.match(r"(#+) (.*)", line):
            n = len(m.group(1))
            body.append(f"<h{n}>{_inline(m.group(2))}</h{n}>")
        elif m := _IMG.fullmatch(line.strip()):
            with open(os.path.join(base_dir, m.group(2)), "rb") as f:
                data = base64.b64encode(f.read()).decode()
            body.append(f'<p><img alt="{html.escape(m.group(1))}" src="data:image/png;base64,{data}"></p>')
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;"
             "color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0;font-size:13px}"
             "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f3f3f3}"
             "tr:nth-child(even) td{background:#fafafa}img{max-width:100%;border:1px solid #eee}"
             "code{background:#f3f3f3;padding:0 3px}")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>kdjax report</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")

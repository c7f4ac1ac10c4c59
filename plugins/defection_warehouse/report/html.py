"""The leadership report: one self-contained HTML file per as-of date.

Charts are Plotly figures whose script is embedded in the page (no CDN: the file opens
with no network). Every chart says what it shows, how it is defined and as of which date;
the headline figures carry the mart value they show in `data-value`, so a test (or a
reader) can check a figure against its row.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from defection_warehouse.report.data import (
    TRAILING_MONTHS,
    TREND_MONTHS,
    ReportData,
)

AT_RISK_ROWS = 25  # accounts listed in the at-risk table (the chart sums all of them)
CHART_HEIGHT = 380
CAUSES_DRAWN = 6  # lines drawn in the lost-MRR-by-cause chart


@dataclass(frozen=True)
class Chart:
    chart_id: str
    title: str
    definition: str
    figure: go.Figure


def report_path(data_dir: Path, as_of_date: date) -> Path:
    """Where the report of an as-of date is kept: <data_dir>/reports/<date>/report.html."""
    return data_dir / "reports" / as_of_date.isoformat() / "report.html"


def _pct(value: Decimal | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{float(value) * 100:.{digits}f}%"


def _money(cents: Decimal | int | None) -> str:
    return "n/a" if cents is None else f"{float(cents) / 100:,.0f}"


def _f(value: Decimal | int | None) -> float | None:
    return None if value is None else float(value)


def _month_label(month: date) -> str:
    return f"{month:%Y-%m}"


def _layout(fig: go.Figure, *, y_title: str, percent: bool = False) -> go.Figure:
    fig.update_layout(height=CHART_HEIGHT, margin={"l": 60, "r": 20, "t": 20, "b": 50},
                      legend={"orientation": "h", "y": -0.2}, template="plotly_white",
                      yaxis_title=y_title, hovermode="x unified")
    if percent:
        fig.update_yaxes(tickformat=".1%")
    return fig


def churn_chart(data: ReportData) -> Chart:
    months = [_month_label(k["month"]) for k in data.kpis]
    fig = go.Figure()
    for column, name in (("logo_churn_rate", "logo churn"),
                         ("gross_mrr_churn_rate", "gross MRR churn"),
                         ("net_mrr_churn_rate", "net MRR churn")):
        fig.add_trace(go.Scatter(x=months, y=[_f(k[column]) for k in data.kpis],
                                 mode="lines+markers", name=name))
    return Chart("churn", "Logo and revenue churn, monthly",
                 "kpi_retention_monthly. Logo churn = customers with a churn movement / "
                 "customers paying at the start of the month. Gross MRR churn = (churned + "
                 "contraction MRR) / MRR at the start of the month; net MRR churn also "
                 "subtracts expansion and reactivation MRR (negative when expansion "
                 "outweighs losses).", _layout(fig, y_title="rate", percent=True))


def retention_chart(data: ReportData) -> Chart:
    months = [_month_label(k["month"]) for k in data.kpis]
    fig = go.Figure()
    for column, name in (("grr_t12", "GRR (trailing 12 months)"),
                         ("nrr_t12", "NRR (trailing 12 months)")):
        fig.add_trace(go.Scatter(x=months, y=[_f(k[column]) for k in data.kpis],
                                 mode="lines+markers", name=name, connectgaps=False))
    return Chart("grr_nrr", "Gross and net revenue retention, trailing 12 months",
                 "kpi_retention_monthly. GRR = sum over customers paying 12 months earlier "
                 "of min(MRR now, MRR then) / their MRR then; NRR uses their MRR now in the "
                 "numerator. Empty for the first 12 months of revenue.",
                 _layout(fig, y_title="retention", percent=True))


def _attribution_series(data: ReportData, key: str) -> tuple[list[str], dict[str, dict]]:
    """Lost MRR (currency units) per `key` and month; the months are the KPI table's, so
    a month without defections is on the axis (at 0)."""
    rows = data.attribution
    months = sorted({k["month"] for k in data.kpis} | {r["defection_month"] for r in rows})
    series: dict[str, dict[date, Decimal]] = {}
    for r in rows:
        per_month = series.setdefault(r[key], {})
        per_month[r["defection_month"]] = per_month.get(r["defection_month"], 0) + r["lost_mrr"]
    return [_month_label(m) for m in months], {
        name: {_month_label(m): float(v) / 100 for m, v in values.items()}
        for name, values in series.items()}


def cause_chart(data: ReportData) -> Chart:
    labels, series = _attribution_series(data, "cause_id")
    fig = go.Figure()
    ranked = sorted(series, key=lambda c: -sum(series[c].values()))
    for rank, cause in enumerate(ranked):
        # the causes that lost the most are drawn; the rest are a click on the legend away
        fig.add_trace(go.Scatter(x=labels, y=[series[cause].get(m, 0.0) for m in labels],
                                 mode="lines+markers", name=cause,
                                 visible=True if rank < CAUSES_DRAWN else "legendonly"))
    return Chart("lost_mrr_by_cause", "Lost MRR by cause",
                 "mart_cause_attribution, lost_mrr_attributed summed over segments, in "
                 "currency units. Each defection's lost MRR is spread over its causes by "
                 "weight (a defection's weights sum to 1). A fix that works shows up as a "
                 f"falling line. The {CAUSES_DRAWN} causes that lost the most over the period "
                 "are drawn; click a legend entry to add another.",
                 _layout(fig, y_title="lost MRR"))


def owner_chart(data: ReportData) -> Chart:
    labels, series = _attribution_series(data, "owning_function")
    fig = go.Figure()
    for owner in sorted(series, key=lambda o: -sum(series[o].values())):
        fig.add_trace(go.Bar(x=labels, y=[series[owner].get(m, 0.0) for m in labels],
                             name=owner))
    fig.update_layout(barmode="stack")
    return Chart("lost_mrr_by_owner", "Lost MRR by owning function",
                 "mart_cause_attribution, lost_mrr_attributed summed over the causes each "
                 "function owns (seed cause_taxonomy) and over segments, in currency units; "
                 "a month's bars add up to the MRR its defections lost.",
                 _layout(fig, y_title="lost MRR"))


def _heatmap(data: ReportData, column: str) -> go.Figure:
    cohorts = sorted({c["cohort_month"] for c in data.cohorts})
    ages = sorted({c["months_since_start"] for c in data.cohorts})
    cells = {(c["cohort_month"], c["months_since_start"]): _f(c[column])
             for c in data.cohorts}
    z = [[cells.get((cohort, age)) for age in ages] for cohort in cohorts]
    fig = go.Figure(go.Heatmap(z=z, x=ages, y=[_month_label(c) for c in cohorts],
                               colorscale="RdYlGn", zmin=0, zmax=1.2 if "revenue" in column
                               else 1, hoverongaps=False,
                               colorbar={"tickformat": ".0%"}))
    fig.update_layout(height=CHART_HEIGHT + 120, margin={"l": 80, "r": 20, "t": 20, "b": 50},
                      template="plotly_white", xaxis_title="months since the cohort month",
                      yaxis_title="cohort", yaxis={"autorange": "reversed",
                                                   "type": "category"})
    return fig


def cohort_charts(data: ReportData) -> list[Chart]:
    return [
        Chart("cohort_logo", "Cohort logo retention",
              "kpi_cohort_retention.logo_retention = cohort customers paying at the end of "
              "the month / customers in the cohort (the customers whose first paying month "
              f"is the cohort month); the last {TREND_MONTHS} cohorts.",
              _heatmap(data, "logo_retention")),
        Chart("cohort_revenue", "Cohort revenue retention",
              "kpi_cohort_retention.revenue_retention = the cohort's MRR at the end of the "
              "month / its MRR at the end of the cohort month (net of expansion, so it can "
              "exceed 100%).", _heatmap(data, "revenue_retention")),
    ]


def coverage_chart(data: ReportData) -> Chart:
    months = [_month_label(k["month"]) for k in data.kpis]
    fig = go.Figure()
    for column, name in (("feedback_coverage", "feedback coverage"),
                         ("evidence_coverage", "evidence coverage")):
        fig.add_trace(go.Scatter(x=months, y=[_f(k[column]) for k in data.kpis],
                                 mode="lines+markers", name=name))
    final = [_f(k["win_back_rate"]) if k["is_winback_window_complete"] else None
             for k in data.kpis]
    provisional = [None if k["is_winback_window_complete"] else _f(k["win_back_rate"])
                   for k in data.kpis]
    fig.add_trace(go.Scatter(x=months, y=final, mode="lines+markers", name="win-back rate"))
    fig.add_trace(go.Scatter(x=months, y=provisional, mode="markers",
                             name="win-back rate (provisional)",
                             marker={"symbol": "circle-open"}))
    return Chart("coverage", "Feedback coverage, evidence coverage and win-back rate",
                 "kpi_retention_monthly. Feedback coverage = defections with a stated reason "
                 "/ defections; evidence coverage = defections with any evidence, stated or "
                 "observed / defections; win-back rate = defections paying again within 180 "
                 "days / defections (open markers: provisional, the 180-day window is still "
                 "open).", _layout(fig, y_title="share of defections", percent=True))


def at_risk_chart(data: ReportData) -> Chart:
    totals: dict[str, Decimal] = {}
    for r in data.at_risk:
        totals[r["owning_function"]] = totals.get(r["owning_function"], 0) + r["mrr_at_risk"]
    owners = sorted(totals, key=lambda o: -totals[o])
    fig = go.Figure(go.Bar(x=owners, y=[float(totals[o]) / 100 for o in owners],
                           name="MRR at risk"))
    return Chart("at_risk", "MRR at risk now, by owning function",
                 "mart_accounts_at_risk: paying customers with a current signal (the same "
                 "rules as attribution, applied at the as-of date); mrr_at_risk (MRR in the "
                 "as-of month, currency units) summed by the function owning each account's "
                 "top cause.", _layout(fig, y_title="MRR at risk"))


def _headline(label: str, value: Any, shown: str, kpi: str, definition: str) -> str:
    return (f'<div class="kpi" data-kpi="{kpi}" data-value="{html.escape(str(value))}" '
            f'title="{html.escape(definition)}"><div class="kpi-value">{html.escape(shown)}'
            f'</div><div class="kpi-label">{html.escape(label)}</div></div>')


def headlines(data: ReportData) -> str:
    k = data.focus_kpi
    at_risk = sum((r["mrr_at_risk"] for r in data.at_risk), 0)
    items = [
        _headline("logo churn", k["logo_churn_rate"], _pct(k["logo_churn_rate"], 2),
                  "logo_churn_rate", "kpi_retention_monthly.logo_churn_rate"),
        _headline("gross MRR churn", k["gross_mrr_churn_rate"],
                  _pct(k["gross_mrr_churn_rate"], 2), "gross_mrr_churn_rate",
                  "kpi_retention_monthly.gross_mrr_churn_rate"),
        _headline("GRR, trailing 12 months", k["grr_t12"], _pct(k["grr_t12"]), "grr_t12",
                  "kpi_retention_monthly.grr_t12"),
        _headline("NRR, trailing 12 months", k["nrr_t12"], _pct(k["nrr_t12"]), "nrr_t12",
                  "kpi_retention_monthly.nrr_t12"),
        _headline("MRR lost to defections", k["defections_lost_mrr"],
                  _money(k["defections_lost_mrr"]), "defections_lost_mrr",
                  "kpi_retention_monthly.defections_lost_mrr (currency units)"),
        _headline("evidence coverage", k["evidence_coverage"], _pct(k["evidence_coverage"]),
                  "evidence_coverage", "kpi_retention_monthly.evidence_coverage"),
        _headline(f"MRR at risk now ({len(data.at_risk)} accounts)", at_risk,
                  _money(at_risk), "mrr_at_risk", "sum of mart_accounts_at_risk.mrr_at_risk"),
    ]
    return (f'<p class="note">Headline month {_month_label(data.focus_month)} '
            f'(kpi_retention_monthly); MRR at risk as of {data.as_of_date}.</p>'
            f'<div class="kpis">{"".join(items)}</div>')


def trend_table(data: ReportData) -> str:
    rows = []
    for t in data.cause_trends:
        mean = "n/a" if t.trailing_mean is None else _money(t.trailing_mean)
        rows.append(f'<tr class="{t.direction}"><td>{html.escape(t.cause_label)}</td>'
                    f"<td>{html.escape(t.owning_function)}</td>"
                    f'<td class="num">{_money(t.lost_mrr)}</td>'
                    f'<td class="num">{float(t.defections):.1f}</td>'
                    f'<td class="num">{mean}</td>'
                    f"<td>{t.arrow} {t.direction}</td></tr>")
    return ('<table class="data" id="cause_trends"><thead><tr><th>cause</th><th>owner</th>'
            f"<th>lost MRR {_month_label(data.focus_month)}</th><th>defections</th>"
            f"<th>mean of the {TRAILING_MONTHS} months before</th><th>trend</th></tr>"
            f'</thead><tbody>{"".join(rows)}</tbody></table>')


def at_risk_table(data: ReportData) -> str:
    rows = []
    for r in data.at_risk[:AT_RISK_ROWS]:
        causes = ", ".join(r["causes"] or [])
        rows.append(f"<tr><td>{html.escape(r['account_name'] or r['customer_id'])}</td>"
                    f"<td>{html.escape(r['segment'] or '')}</td>"
                    f'<td class="num">{_money(r["mrr_at_risk"])}</td>'
                    f"<td>{html.escape(r['top_cause'])} "
                    f"({float(r['top_cause_weight']):.0%})</td>"
                    f"<td>{html.escape(causes)}</td>"
                    f"<td>{html.escape(r['owning_function'])}</td>"
                    f"<td>{html.escape(r['owner'] or '')}</td>"
                    f"<td>{html.escape(r['recommended_fix'] or '')}</td></tr>")
    return ('<table class="data" id="at_risk_accounts"><thead><tr><th>account</th>'
            "<th>segment</th><th>MRR at risk</th><th>top cause (weight)</th><th>causes</th>"
            "<th>owning function</th><th>account owner</th><th>recommended fix</th></tr>"
            f'</thead><tbody>{"".join(rows)}</tbody></table>')


def _chart_html(chart: Chart, as_of_date: date) -> str:
    body = pio.to_html(chart.figure, full_html=False, include_plotlyjs=False,
                       div_id=f"chart-{chart.chart_id}",
                       config={"displaylogo": False, "responsive": True})
    return (f'<section class="chart" data-chart="{chart.chart_id}" '
            f'data-points="{_points(chart.figure)}"><h3>{html.escape(chart.title)}</h3>'
            f'<p class="definition">{html.escape(chart.definition)} '
            f"<span class=\"asof\">As of {as_of_date}.</span></p>{body}</section>")


def _points(fig: go.Figure) -> int:
    """Data points the figure holds (non-null y or z values), for the rendered check."""
    count = 0
    for trace in fig.data:
        values = trace.z if getattr(trace, "z", None) is not None else trace.y
        for v in values or ():
            if isinstance(v, list | tuple):
                count += sum(x is not None for x in v)
            elif v is not None:
                count += 1
    return count


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1200px;padding:16px 24px;color:#222}
h1{margin-bottom:0} h2{margin-top:32px;border-bottom:1px solid #ddd}
.note,.definition{color:#555;font-size:14px}
.kpis{display:flex;flex-wrap:wrap;gap:12px}
.kpi{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:130px}
.kpi-value{font-size:26px;font-weight:600} .kpi-label{font-size:13px;color:#555}
table.data{border-collapse:collapse;font-size:13px;width:100%}
table.data th,table.data td{border-bottom:1px solid #eee;padding:4px 6px;text-align:left;
vertical-align:top} td.num{text-align:right;white-space:nowrap}
tr.rising td:last-child{color:#b00020} tr.falling td:last-child{color:#1b7f3b}
"""


def render(data: ReportData, currency: str = "usd") -> str:
    """The report's HTML (one file, Plotly's script inline)."""
    charts = {c.chart_id: c for c in (churn_chart(data), retention_chart(data),
                                      cause_chart(data), owner_chart(data),
                                      *cohort_charts(data), coverage_chart(data),
                                      at_risk_chart(data))}

    def chart(chart_id: str) -> str:
        return _chart_html(charts[chart_id], data.as_of_date)

    title = f"Defection Warehouse: leadership report as of {data.as_of_date}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script></head>
<body data-as-of="{data.as_of_date}">
<h1>Leadership report</h1>
<p class="note">As of {data.as_of_date} (the last night published to
<code>{html.escape(data.schema)}</code>). Money in {html.escape(currency.upper())}, currency
units; the last {TREND_MONTHS} months. Every figure comes from the published marts
named under its chart.</p>
{headlines(data)}
<h2>Are we losing customers faster?</h2>
{chart("churn")}
{chart("grr_nrr")}
<h2>Why: lost MRR by cause and by owner</h2>
{chart("lost_mrr_by_cause")}
<p class="definition">Trend: a cause's lost MRR in {_month_label(data.focus_month)} against
the mean of the {TRAILING_MONTHS} months before it (rising or falling when more than 10%
above or below it). As of {data.as_of_date}.</p>
{trend_table(data)}
{chart("lost_mrr_by_owner")}
<h2>Cohorts</h2>
{chart("cohort_logo")}
{chart("cohort_revenue")}
<h2>How much we know, and who comes back</h2>
{chart("coverage")}
<h2>Accounts at risk now</h2>
{chart("at_risk")}
<p class="definition">The {min(AT_RISK_ROWS, len(data.at_risk))} accounts with the most
MRR at risk of {len(data.at_risk)} (mart_accounts_at_risk), with their causes by falling
weight, the function owning the top cause and the account owner. As of
{data.as_of_date}.</p>
{at_risk_table(data)}
</body></html>
"""


def write_report(data: ReportData, data_dir: Path, currency: str = "usd") -> Path:
    """Write the report to `report_path` (atomically: a reader never sees half a file)."""
    path = report_path(data_dir, data.as_of_date)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render(data, currency), encoding="utf-8")
    tmp.replace(path)
    return path

"""Product catalog and cause taxonomy of the sample business, kept as plain data.

Everything here is plain tuples of rows with a column tuple next to them, so the same
values can be mirrored into dbt seeds (``seed_csv(PRICE_COLUMNS, PRICES)``) and stay in step
with what the generator produced.

- ``PRICES``: every recurring price. ``unit_amount`` is in cents per seat per interval
  (per unit for the flat-priced support add-on). ``min_seats`` and ``min_employees`` are the
  plan minimum the ``poor_fit`` rule compares against; add-ons have no minimum (0).
- ``CAUSES``: the cause taxonomy: the owning function, whether the cause is observed in the
  data or only stated, the exit-survey option and billing feedback value it is stated
  with, and the trace it leaves behind.
- ``STATED_REASONS``: how each stated code maps to a cause (exit-survey option codes,
  Stripe ``cancellation_details.feedback`` and ``cancellation_details.reason`` values).
- ``TRACE_RULES``: the thresholds the generator plants its traces against.
- ``FX_REFERENCE`` and ``fx_rates()``: the currencies the sample bills besides usd, the
  reference rate each one's local list prices are set at, and the monthly rates of the
  FX seed (``dbt_project/seeds/fx_rates_monthly.csv``, written by ``fx_seed_csv()``),
  which move around that reference.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

CURRENCY = "usd"

# ---------------------------------------------------------------------------------------
# Products and prices
# ---------------------------------------------------------------------------------------
PRODUCT_COLUMNS = ("product_id", "name", "kind")
PRODUCTS: tuple[tuple[str, str, str], ...] = (
    ("prod_starter", "Relay Starter", "plan"),
    ("prod_team", "Relay Team", "plan"),
    ("prod_business", "Relay Business", "plan"),
    ("prod_enterprise", "Relay Enterprise", "plan"),
    ("prod_insights", "Insights add-on", "addon"),
    ("prod_premium_support", "Premium Support add-on", "addon"),
)

PRICE_COLUMNS = (
    "price_id", "product_id", "plan", "plan_name", "interval", "unit_amount",
    "per_seat", "min_seats", "min_employees", "tier",
)
# tier orders the base plans (1 = smallest); add-ons have tier 0.
PRICES: tuple[tuple[str, str, str, str, str, int, bool, int, int, int], ...] = (
    ("price_starter_monthly", "prod_starter", "starter", "Starter", "month", 1_200,
     True, 1, 1, 1),
    ("price_starter_yearly", "prod_starter", "starter", "Starter", "year", 12_000,
     True, 1, 1, 1),
    ("price_team_monthly", "prod_team", "team", "Team", "month", 2_900,
     True, 10, 25, 2),
    ("price_team_yearly", "prod_team", "team", "Team", "year", 29_000,
     True, 10, 25, 2),
    ("price_business_monthly", "prod_business", "business", "Business", "month", 4_900,
     True, 50, 250, 3),
    ("price_business_yearly", "prod_business", "business", "Business", "year", 49_000,
     True, 50, 250, 3),
    ("price_enterprise_yearly", "prod_enterprise", "enterprise", "Enterprise", "year",
     79_000, True, 200, 1_000, 4),
    ("price_insights_monthly", "prod_insights", "insights", "Insights add-on", "month",
     600, True, 0, 0, 0),
    ("price_insights_yearly", "prod_insights", "insights", "Insights add-on", "year",
     6_000, True, 0, 0, 0),
    ("price_premium_support_monthly", "prod_premium_support", "premium_support",
     "Premium Support add-on", "month", 49_900, False, 0, 0, 0),
    ("price_premium_support_yearly", "prod_premium_support", "premium_support",
     "Premium Support add-on", "year", 499_000, False, 0, 0, 0),
)


@dataclass(frozen=True)
class Price:
    price_id: str
    product_id: str
    plan: str
    plan_name: str
    interval: str
    unit_amount: int
    per_seat: bool
    min_seats: int
    min_employees: int
    tier: int

    @property
    def months(self) -> int:
        return 12 if self.interval == "year" else 1

    @property
    def is_addon(self) -> bool:
        return self.tier == 0


PRICE_BY_ID: dict[str, Price] = {row[0]: Price(*row) for row in PRICES}


def price_for(plan: str, interval: str) -> Price:
    """The price of a plan at an interval (enterprise is sold yearly only)."""
    if plan == "enterprise":
        interval = "year"
    return PRICE_BY_ID[f"price_{plan}_{'yearly' if interval == 'year' else 'monthly'}"]


# Percent-off coupons (duration forever) handed out by sales.
COUPON_COLUMNS = ("coupon_id", "name", "percent_off")
COUPONS: tuple[tuple[str, str, int], ...] = (
    ("WELCOME10", "Welcome 10%", 10),
    ("PARTNER15", "Partner referral 15%", 15),
    ("LAUNCH20", "Launch offer 20%", 20),
    ("NONPROFIT25", "Nonprofit 25%", 25),
)

# ---------------------------------------------------------------------------------------
# Cause taxonomy
# ---------------------------------------------------------------------------------------
CAUSE_COLUMNS = (
    "cause_id", "label", "owner_function", "evidence_kind", "exit_option",
    "billing_feedback", "trace",
)
CAUSES: tuple[tuple[str, str, str, str, str, str, str], ...] = (
    ("poor_fit", "Poor fit: should never have bought", "marketing", "observed",
     "wrong_fit", "too_complex",
     "seats or employee_count below the plan's min_seats / min_employees"),
    ("oversold", "Oversold: sales promises not kept", "sales", "observed",
     "promises_not_kept", "other",
     "go_live_date more than 30 days after promised_go_live_date, or no go-live at all "
     "30+ days after the promised date"),
    ("failed_adoption", "Failed adoption: seats never used", "onboarding", "observed",
     "not_using_it", "unused",
     "active_users under 30% of licensed_seats on the last 2+ monthly snapshots"),
    ("product_issues", "Product issues: bugs, outages, gaps", "engineering", "observed",
     "product_unreliable", "low_quality",
     "3+ bug/outage tickets in 90 days, or an unresolved high/urgent bug"),
    ("poor_service", "Poor service: treated badly", "support", "observed",
     "poor_support", "customer_service",
     "a ticket with csat_score 1 or 2 in 90 days"),
    ("slow_resolution", "Slow resolution: problems not solved in time", "support",
     "observed", "slow_support", "other",
     "first response over 24 h and resolution over 5 days"),
    ("hassle", "Hassle: billing disputes, refunds, invoice errors", "finance",
     "observed", "billing_problems", "other",
     "billing tickets, refunds or disputes in 90 days"),
    ("neglect", "Neglect: nobody kept in touch", "customer_success", "observed",
     "felt_ignored", "other",
     "no activity for 45+ days and no survey answered for 180 days"),
    ("goals_unmet", "Goals unmet: value not achieved", "customer_success", "observed",
     "goals_not_met", "other",
     "relationship NPS 0-6 in 180 days"),
    ("price", "Price: too expensive", "pricing", "stated",
     "too_expensive", "too_expensive", "stated only"),
    ("competitor", "Competitor: switched to another vendor", "product_marketing",
     "stated", "switched_to_competitor", "switched_service", "stated only"),
    ("financial_distress", "Financial distress: unable to pay", "finance", "observed",
     "business_closing", "",
     "failed charges, invoice uncollectible, subscription canceled for payment_failed"),
)
CAUSE_IDS: tuple[str, ...] = tuple(row[0] for row in CAUSES)
EXIT_OPTION_BY_CAUSE: dict[str, str] = {row[0]: row[4] for row in CAUSES}
FEEDBACK_BY_CAUSE: dict[str, str] = {row[0]: row[5] or "other" for row in CAUSES}
STATED_ONLY: frozenset[str] = frozenset(r[0] for r in CAUSES if r[3] == "stated")

# Stated code -> cause. Every code maps to at most one cause; "other" maps to none.
STATED_REASON_COLUMNS = ("source", "code", "cause_id")
STATED_REASONS: tuple[tuple[str, str, str], ...] = (
    *(("exit_survey", row[4], row[0]) for row in CAUSES),
    ("exit_survey", "missing_features", "product_issues"),
    ("exit_survey", "other", ""),
    ("billing_feedback", "too_expensive", "price"),
    ("billing_feedback", "switched_service", "competitor"),
    ("billing_feedback", "unused", "failed_adoption"),
    ("billing_feedback", "low_quality", "product_issues"),
    ("billing_feedback", "missing_features", "product_issues"),
    ("billing_feedback", "customer_service", "poor_service"),
    ("billing_feedback", "too_complex", "poor_fit"),
    ("billing_feedback", "other", ""),
    ("billing_reason", "payment_failed", "financial_distress"),
    ("billing_reason", "payment_disputed", "hassle"),
    ("billing_reason", "cancellation_requested", ""),
)

# The thresholds the traces are planted against (healthy customers stay clear of them).
TRACE_RULES: dict[str, float] = {
    "lookback_days": 90,
    "survey_lookback_days": 180,
    "poor_fit_below_plan_minimum": 1,
    "oversold_go_live_late_days": 30,
    "failed_adoption_active_share_below": 0.30,
    "failed_adoption_min_snapshots": 2,
    "product_issues_min_bug_outage_tickets": 3,
    "slow_resolution_first_response_hours_over": 24,
    "slow_resolution_resolution_days_over": 5,
    "poor_service_csat_at_most": 2,
    "neglect_no_activity_days": 45,
    "goals_unmet_nps_at_most": 6,
    "dunning_days": 30,
}


# ---------------------------------------------------------------------------------------
# Currencies
# ---------------------------------------------------------------------------------------
# The sample bills most customers in usd and some EMEA customers in eur or gbp. A local
# list price is the usd price at the currency's reference rate (value of one unit in usd),
# in whole cents; the monthly rates of the FX seed move within 3% of that reference, so a
# customer's MRR converted to usd stays within 3% of the usd list price and moves a little
# from month to month, as it would for a real business.
FX_REFERENCE: dict[str, float] = {"eur": 1.08, "gbp": 1.27}
FX_SEED_FIRST_MONTH = date(2020, 1, 1)
FX_SEED_LAST_MONTH = date(2027, 12, 1)
FX_SEED_COLUMNS = ("month", "currency", "rate_to_base")


def local_unit_amount(unit_amount: int, currency: str) -> int:
    """A usd unit amount (cents) as the currency's list price (its minor units)."""
    if currency == CURRENCY:
        return unit_amount
    return int(unit_amount / FX_REFERENCE[currency] + 0.5)


def fx_rates() -> list[tuple[str, str, str]]:
    """Rows of the FX seed: (month, currency, value of one unit in usd, 4 decimals) for
    every month of FX_SEED_FIRST_MONTH..FX_SEED_LAST_MONTH; usd, the base, is 1."""
    rows = []
    month, k = FX_SEED_FIRST_MONTH, 0
    while month <= FX_SEED_LAST_MONTH:
        rows.append((month.isoformat(), CURRENCY, "1.0000"))
        for j, (currency, reference) in enumerate(sorted(FX_REFERENCE.items())):
            wave = 0.02 * math.sin(2 * math.pi * k / (17 + 6 * j) + j) \
                + 0.01 * math.sin(2 * math.pi * k / 5 + 2 * j)
            rows.append((month.isoformat(), currency, f"{reference * (1 + wave):.4f}"))
        k += 1
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return rows


def fx_seed_csv() -> str:
    return seed_csv(FX_SEED_COLUMNS, fx_rates())


def seed_csv(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Rows as CSV text (booleans as true/false), the layout dbt seeds take."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow(["true" if v is True else "false" if v is False else v for v in row])
    return buf.getvalue()

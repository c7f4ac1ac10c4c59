"""Source contracts: every table the warehouse accepts from CRM, billing and survey.

One definition drives the CRM source DDL of the sample, the landing file layout, the raw
table DDL, the loader's row validation and the generated contract doc
(``python -m defection_warehouse.sources.contracts > docs/source_contracts.md``).

Time zones: CRM and survey timestamps are ISO 8601 with an explicit UTC offset; billing
timestamps are epoch seconds (UTC) as the billing API sends them; dates are calendar dates.
Amounts are integers in minor units (cents).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Literal

PgType = Literal["bigint", "integer", "text", "boolean", "timestamptz", "date"]
Mode = Literal["incremental", "snapshot"]


@dataclass(frozen=True)
class Column:
    name: str
    type: PgType
    description: str
    nullable: bool = True
    # Billing only: where the value sits in the API's JSON object (dotted, `[0]` indexes).
    path: str | None = None
    # The complete set of values the source may send (enums); the quality gate rejects
    # any other non-null value. None: an open set.
    accepted_values: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Entity:
    source: str
    name: str
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    # incremental: each batch holds the rows changed in its window.
    # snapshot: each batch holds the full current state.
    mode: Mode = "incremental"
    # CRM: the change-tracking column the extract window filters on.
    updated_column: str | None = None
    # Billing: API list endpoint, or the parent entity + JSON path for nested lists.
    endpoint: str | None = None
    parent: str | None = None
    nested_path: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def raw_table(self) -> str:
        return f"raw_{self.source}.{self.name}"

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.source}.{self.name} has no column {name!r}")


def C(name: str, type_: PgType, description: str, *, key: bool = False,
      nullable: bool = True, path: str | None = None,
      accepted: tuple[str, ...] | None = None) -> Column:
    return Column(name, type_, description, nullable=nullable and not key, path=path,
                  accepted_values=accepted)


# ---------------------------------------------------------------------------------------
# CRM: an operational CRM database (HubSpot / Salesforce-like objects), schema `crm`.
# ---------------------------------------------------------------------------------------
_CRM_TRACKING = (
    C("created_at", "timestamptz", "When the record was created in the CRM.", nullable=False),
    C("updated_at", "timestamptz", "Last modification; the incremental extract filters on it.",
      nullable=False),
    C("is_deleted", "boolean", "Soft-delete flag: deletes arrive as flagged rows.",
      nullable=False),
)

CRM_ENTITIES: tuple[Entity, ...] = (
    Entity(
        "crm", "accounts", "Companies that buy (or bought) the product.",
        (
            C("account_id", "text", "CRM account id.", key=True),
            C("name", "text", "Company name."),
            C("domain", "text", "Company web domain."),
            C("industry", "text", "Industry label as kept in the CRM."),
            C("employee_count", "integer", "Number of employees."),
            C("segment", "text", "Sales segment: smb, mid_market or enterprise.",
              accepted=("smb", "mid_market", "enterprise")),
            C("region", "text", "Sales region: na, emea, apac or latam.",
              accepted=("na", "emea", "apac", "latam")),
            C("owner_name", "text", "Account owner (sales or customer success)."),
            *_CRM_TRACKING,
        ),
        ("account_id",), updated_column="updated_at",
    ),
    Entity(
        "crm", "contacts", "People at customer accounts.",
        (
            C("contact_id", "text", "CRM contact id.", key=True),
            C("account_id", "text", "Account the contact works for."),
            C("email", "text", "Work email (personal data)."),
            C("first_name", "text", "First name (personal data)."),
            C("last_name", "text", "Last name (personal data)."),
            C("title", "text", "Job title."),
            *_CRM_TRACKING,
        ),
        ("contact_id",), updated_column="updated_at",
    ),
    Entity(
        "crm", "deals", "Sales opportunities, including what the sale promised.",
        (
            C("deal_id", "text", "CRM deal id.", key=True),
            C("account_id", "text", "Account the deal is for."),
            C("stage", "text", "Pipeline stage: open, closed_won or closed_lost.",
              accepted=("open", "closed_won", "closed_lost")),
            C("amount", "bigint", "Deal value in minor units."),
            C("seats_sold", "integer", "Seats promised in the deal."),
            C("promised_go_live_date", "date", "Go-live date promised during the sale."),
            C("go_live_date", "date", "Actual go-live date, when it happened."),
            C("closed_at", "timestamptz", "When the deal was closed."),
            *_CRM_TRACKING,
        ),
        ("deal_id",), updated_column="updated_at",
    ),
    Entity(
        "crm", "activities", "Touchpoints with an account: calls, emails, meetings, reviews.",
        (
            C("activity_id", "text", "CRM activity id.", key=True),
            C("account_id", "text", "Account touched."),
            C("contact_id", "text", "Contact touched, when known."),
            C("activity_type", "text", "call, email, meeting or business_review.",
              accepted=("call", "email", "meeting", "business_review")),
            C("occurred_at", "timestamptz", "When the touchpoint happened."),
            *_CRM_TRACKING,
        ),
        ("activity_id",), updated_column="updated_at",
    ),
    Entity(
        "crm", "tickets", "Support tickets.",
        (
            C("ticket_id", "text", "CRM ticket id.", key=True),
            C("account_id", "text", "Account that raised the ticket."),
            C("contact_id", "text", "Contact that raised the ticket."),
            C("category", "text", "bug, outage, how_to, billing or feature_request.",
              accepted=("bug", "outage", "how_to", "billing", "feature_request")),
            C("priority", "text", "low, normal, high or urgent.",
              accepted=("low", "normal", "high", "urgent")),
            C("status", "text", "open, pending, solved or closed.",
              accepted=("open", "pending", "solved", "closed")),
            C("opened_at", "timestamptz", "When the ticket was opened."),
            C("first_response_at", "timestamptz", "First agent response."),
            C("resolved_at", "timestamptz", "When it was solved."),
            C("csat_score", "integer", "Ticket satisfaction 1-5, when answered."),
            *_CRM_TRACKING,
        ),
        ("ticket_id",), updated_column="updated_at",
    ),
    Entity(
        "crm", "usage_snapshots",
        "Product usage synced into the CRM, one row per account and snapshot date.",
        (
            C("account_id", "text", "Account measured.", key=True),
            C("snapshot_date", "date", "Day the usage refers to.", key=True),
            C("active_users", "integer", "Users active in the 30 days to the snapshot."),
            C("licensed_seats", "integer", "Seats licensed at the snapshot."),
            *_CRM_TRACKING,
        ),
        ("account_id", "snapshot_date"), updated_column="updated_at",
    ),
)

# ---------------------------------------------------------------------------------------
# Billing: a Stripe-compatible REST API. Columns name the JSON path they are read from.
# ---------------------------------------------------------------------------------------
# The Stripe API version the extractor is written for, sent as `Stripe-Version` unless
# BILLING_API_VERSION names another. It also reads the shape of 2025-03-31.basil and later
# (and clover's discounts): where a field moved, the raw table has a column for each path
# and staging takes whichever the batch has. See BILLING_SHAPES for the list.
BILLING_API_VERSION = "2025-02-24.acacia"
# First versions of the shapes the extractor reads besides the pinned one.
BASIL_API_VERSION = "2025-03-31.basil"
CLOVER_API_VERSION = "2025-09-30.clover"
# Stripe's enums where the API may send more than the sample uses (accepted, not flagged).
STRIPE_CANCELLATION_FEEDBACK: tuple[str, ...] = (
    "too_expensive", "missing_features", "switched_service", "unused", "customer_service",
    "too_complex", "low_quality", "other",
)
STRIPE_INTERVALS: tuple[str, ...] = ("day", "week", "month", "year")
STRIPE_BILLING_REASONS: tuple[str, ...] = (
    "subscription_create", "subscription_cycle", "subscription_update", "manual",
    "subscription_threshold", "subscription", "quote_accept", "upcoming",
    "automatic_pending_invoice_item_invoice",
)

BILLING_ENTITIES: tuple[Entity, ...] = (
    Entity(
        "billing", "customers", "Billing customers; metadata links them to the CRM account.",
        (
            C("customer_id", "text", "Billing customer id (cus_...).", key=True, path="id"),
            C("created", "bigint", "Creation time, epoch seconds UTC.", path="created"),
            C("email", "text", "Billing email (personal data).", path="email"),
            C("name", "text", "Billing name.", path="name"),
            C("crm_account_id", "text", "CRM account id from metadata.crm_account_id.",
              path="metadata.crm_account_id"),
            C("currency", "text", "Default currency.", path="currency"),
            C("delinquent", "boolean", "Has an unpaid invoice.", path="delinquent"),
        ),
        ("customer_id",), mode="snapshot", endpoint="/v1/customers",
    ),
    Entity(
        "billing", "subscriptions", "Subscriptions in every status (listed with status=all).",
        (
            C("subscription_id", "text", "Subscription id (sub_...).", key=True, path="id"),
            C("customer_id", "text", "Billing customer.", path="customer"),
            C("status", "text", "active, past_due, unpaid, canceled, incomplete, "
              "incomplete_expired, trialing or paused.", path="status",
              accepted=("active", "past_due", "unpaid", "canceled", "incomplete",
                        "incomplete_expired", "trialing", "paused")),
            C("created", "bigint", "Creation time, epoch seconds.", path="created"),
            C("start_date", "bigint", "Start, epoch seconds.", path="start_date"),
            C("current_period_start", "bigint", "Current period start, epoch seconds.",
              path="current_period_start"),
            C("current_period_end", "bigint", "Current period end, epoch seconds.",
              path="current_period_end"),
            C("item_current_period_start", "bigint", "Current period start of the first "
              "item (basil and later keep the period on the items), epoch seconds.",
              path="items.data[0].current_period_start"),
            C("item_current_period_end", "bigint", "Current period end of the first item "
              "(basil and later), epoch seconds.", path="items.data[0].current_period_end"),
            C("cancel_at_period_end", "boolean", "Cancellation requested for period end.",
              path="cancel_at_period_end"),
            C("cancel_at", "bigint", "Scheduled cancellation time.", path="cancel_at"),
            C("canceled_at", "bigint", "When the cancellation was requested.",
              path="canceled_at"),
            C("ended_at", "bigint", "When the subscription ended.", path="ended_at"),
            C("cancellation_reason", "text", "cancellation_details.reason: "
              "cancellation_requested, payment_failed or payment_disputed.",
              path="cancellation_details.reason",
              accepted=("cancellation_requested", "payment_failed", "payment_disputed")),
            C("cancellation_feedback", "text", "cancellation_details.feedback (Stripe enum).",
              path="cancellation_details.feedback", accepted=STRIPE_CANCELLATION_FEEDBACK),
            C("cancellation_comment", "text", "cancellation_details.comment (free text).",
              path="cancellation_details.comment"),
            C("discount_coupon_id", "text", "Coupon applied.", path="discount.coupon.id"),
            C("discount_percent_off", "integer", "Coupon percent off.",
              path="discount.coupon.percent_off"),
            C("discount_amount_off", "bigint", "Coupon amount off, minor units.",
              path="discount.coupon.amount_off"),
            C("discount_source_coupon_id", "text", "Coupon applied (clover and later: "
              "discount.source.coupon).", path="discount.source.coupon"),
            C("discount_source_percent_off", "integer", "Coupon percent off (clover and "
              "later, with the coupon expanded).",
              path="discount.source.coupon.percent_off"),
            C("discount_source_amount_off", "bigint", "Coupon amount off, minor units "
              "(clover and later, with the coupon expanded).",
              path="discount.source.coupon.amount_off"),
            C("currency", "text", "Currency.", path="currency"),
        ),
        ("subscription_id",), mode="snapshot", endpoint="/v1/subscriptions",
    ),
    Entity(
        "billing", "subscription_items", "Priced items of each subscription (items.data).",
        (
            C("item_id", "text", "Subscription item id (si_...).", key=True, path="id"),
            C("subscription_id", "text", "Parent subscription.", path="subscription"),
            C("price_id", "text", "Price id.", path="price.id"),
            C("product_id", "text", "Product id.", path="price.product"),
            C("unit_amount", "bigint", "Price per unit per interval, minor units.",
              path="price.unit_amount"),
            C("currency", "text", "Currency.", path="price.currency"),
            C("recurring_interval", "text", "month or year.", path="price.recurring.interval",
              accepted=STRIPE_INTERVALS),
            C("recurring_interval_count", "integer", "Intervals per billing period.",
              path="price.recurring.interval_count"),
            C("quantity", "integer", "Seats (units).", path="quantity"),
            C("created", "bigint", "Creation time, epoch seconds.", path="created"),
        ),
        ("item_id",), mode="snapshot", parent="subscriptions", nested_path="items.data",
    ),
    Entity(
        "billing", "invoices", "Invoices (the revenue record MRR is derived from).",
        (
            C("invoice_id", "text", "Invoice id (in_...).", key=True, path="id"),
            C("customer_id", "text", "Billing customer.", path="customer"),
            C("subscription_id", "text", "Subscription billed.", path="subscription"),
            C("parent_subscription_id", "text", "Subscription billed (basil and later).",
              path="parent.subscription_details.subscription"),
            C("status", "text", "draft, open, paid, uncollectible or void.", path="status",
              accepted=("draft", "open", "paid", "uncollectible", "void")),
            C("billing_reason", "text", "subscription_create, subscription_cycle, "
              "subscription_update or manual.", path="billing_reason",
              accepted=STRIPE_BILLING_REASONS),
            C("created", "bigint", "Creation time, epoch seconds.", path="created"),
            C("period_start", "bigint", "Billed period start, epoch seconds.",
              path="period_start"),
            C("period_end", "bigint", "Billed period end, epoch seconds.", path="period_end"),
            C("subtotal", "bigint", "Amount before discounts, minor units.", path="subtotal"),
            C("total", "bigint", "Amount after discounts, minor units.", path="total"),
            C("amount_due", "bigint", "Amount due, minor units.", path="amount_due"),
            C("amount_paid", "bigint", "Amount paid, minor units.", path="amount_paid"),
            C("attempt_count", "integer", "Payment attempts made.", path="attempt_count"),
            C("currency", "text", "Currency.", path="currency"),
        ),
        ("invoice_id",), endpoint="/v1/invoices",
    ),
    Entity(
        "billing", "invoice_lines", "Lines of each invoice (lines.data).",
        (
            C("line_id", "text", "Invoice line id (il_...).", key=True, path="id"),
            C("invoice_id", "text", "Parent invoice.", path="invoice"),
            C("subscription_id", "text", "Subscription the line bills.", path="subscription"),
            C("price_id", "text", "Price id.", path="price.id"),
            C("recurring_interval", "text", "month or year.", path="price.recurring.interval",
              accepted=STRIPE_INTERVALS),
            C("recurring_interval_count", "integer", "Intervals per period.",
              path="price.recurring.interval_count"),
            C("quantity", "integer", "Units billed.", path="quantity"),
            C("amount", "bigint", "Line amount before discounts, minor units.", path="amount"),
            C("discount_amount", "bigint", "Discount on the line, minor units.",
              path="discount_amounts[0].amount"),
            C("period_start", "bigint", "Service period start, epoch seconds.",
              path="period.start"),
            C("period_end", "bigint", "Service period end, epoch seconds.", path="period.end"),
            C("proration", "boolean", "A proration line.", path="proration"),
            C("parent_subscription_id", "text", "Subscription the line bills (basil and "
              "later).", path="parent.subscription_item_details.subscription"),
            C("pricing_price_id", "text", "Price id (basil and later; its interval comes "
              "from billing.prices).", path="pricing.price_details.price"),
            C("parent_proration", "boolean", "A proration line (basil and later).",
              path="parent.subscription_item_details.proration"),
        ),
        ("line_id",), parent="invoices", nested_path="lines.data",
    ),
    Entity(
        "billing", "prices", "Prices (recurring interval of the lines of basil and later).",
        (
            C("price_id", "text", "Price id (price_...).", key=True, path="id"),
            C("product_id", "text", "Product id.", path="product"),
            C("unit_amount", "bigint", "Price per unit per interval, minor units.",
              path="unit_amount"),
            C("currency", "text", "Currency.", path="currency"),
            C("recurring_interval", "text", "month or year; empty for a one-off price.",
              path="recurring.interval", accepted=STRIPE_INTERVALS),
            C("recurring_interval_count", "integer", "Intervals per billing period.",
              path="recurring.interval_count"),
            C("created", "bigint", "Creation time, epoch seconds.", path="created"),
        ),
        ("price_id",), mode="snapshot", endpoint="/v1/prices",
    ),
    Entity(
        "billing", "charges", "Payment attempts.",
        (
            C("charge_id", "text", "Charge id (ch_...).", key=True, path="id"),
            C("customer_id", "text", "Billing customer.", path="customer"),
            C("invoice_id", "text", "Invoice paid by the charge.", path="invoice"),
            C("amount", "bigint", "Amount, minor units.", path="amount"),
            C("currency", "text", "Currency.", path="currency"),
            C("status", "text", "succeeded, failed or pending.", path="status",
              accepted=("succeeded", "failed", "pending")),
            C("failure_code", "text", "Card/bank failure code when failed.",
              path="failure_code"),
            C("refunded", "boolean", "Fully refunded.", path="refunded"),
            C("amount_refunded", "bigint", "Amount refunded, minor units.",
              path="amount_refunded"),
            C("disputed", "boolean", "A dispute was opened.", path="disputed"),
            C("created", "bigint", "Creation time, epoch seconds.", path="created"),
        ),
        ("charge_id",), endpoint="/v1/charges",
    ),
    Entity(
        "billing", "refunds", "Refunds of charges.",
        (
            C("refund_id", "text", "Refund id (re_...).", key=True, path="id"),
            C("charge_id", "text", "Charge refunded.", path="charge"),
            C("amount", "bigint", "Amount, minor units.", path="amount"),
            C("currency", "text", "Currency.", path="currency"),
            C("reason", "text", "duplicate, fraudulent or requested_by_customer.",
              path="reason", accepted=("duplicate", "fraudulent", "requested_by_customer",
                                       "expired_uncaptured_charge")),
            C("status", "text", "pending, succeeded, failed or canceled.", path="status",
              accepted=("pending", "succeeded", "failed", "canceled", "requires_action")),
            C("created", "bigint", "Creation time, epoch seconds.", path="created"),
        ),
        ("refund_id",), endpoint="/v1/refunds",
    ),
    Entity(
        "billing", "disputes", "Chargebacks opened against charges.",
        (
            C("dispute_id", "text", "Dispute id (dp_...).", key=True, path="id"),
            C("charge_id", "text", "Charge disputed.", path="charge"),
            C("amount", "bigint", "Amount, minor units.", path="amount"),
            C("currency", "text", "Currency.", path="currency"),
            C("reason", "text", "Stripe dispute reason (fraudulent, general, ...).",
              path="reason"),
            C("status", "text", "warning_needs_response, needs_response, under_review, "
              "won or lost.", path="status",
              accepted=("warning_needs_response", "warning_under_review", "warning_closed",
                        "needs_response", "under_review", "won", "lost", "prevented")),
            C("created", "bigint", "Creation time, epoch seconds.", path="created"),
        ),
        ("dispute_id",), endpoint="/v1/disputes",
    ),
)

# Where the shapes differ: (table, column of the pinned shape, column of the later shape or
# None with how staging gets the value, first version of the later shape). Staging takes the
# pinned shape's column, else the later one's.
BILLING_SHAPES: tuple[tuple[str, str, str, str], ...] = (
    ("subscriptions", "current_period_start", "item_current_period_start", BASIL_API_VERSION),
    ("subscriptions", "current_period_end", "item_current_period_end", BASIL_API_VERSION),
    ("subscriptions", "discount_coupon_id", "discount_source_coupon_id", CLOVER_API_VERSION),
    ("subscriptions", "discount_percent_off", "discount_source_percent_off",
     CLOVER_API_VERSION),
    ("subscriptions", "discount_amount_off", "discount_source_amount_off", CLOVER_API_VERSION),
    ("invoices", "subscription_id", "parent_subscription_id", BASIL_API_VERSION),
    ("invoice_lines", "subscription_id", "parent_subscription_id", BASIL_API_VERSION),
    ("invoice_lines", "price_id", "pricing_price_id", BASIL_API_VERSION),
    ("invoice_lines", "recurring_interval", "prices.recurring_interval", BASIL_API_VERSION),
    ("invoice_lines", "recurring_interval_count", "prices.recurring_interval_count",
     BASIL_API_VERSION),
    ("invoice_lines", "proration", "parent_proration", BASIL_API_VERSION),
)

# ---------------------------------------------------------------------------------------
# Survey: CSV exports from a survey platform dropped in an inbox as <entity>_<date>.csv.
# ---------------------------------------------------------------------------------------
# Survey option codes of the exit survey (what a platform export carries).
EXIT_REASON_OPTIONS: tuple[str, ...] = (
    "too_expensive", "switched_to_competitor", "missing_features", "product_unreliable",
    "poor_support", "slow_support", "not_using_it", "wrong_fit", "goals_not_met",
    "billing_problems", "business_closing", "promises_not_kept", "felt_ignored", "other",
)

SURVEY_ENTITIES: tuple[Entity, ...] = (
    Entity(
        "survey", "surveys", "Survey definitions.",
        (
            C("survey_id", "text", "Survey id.", key=True),
            C("kind", "text", "relationship_nps, ticket_csat, onboarding or exit.",
              accepted=("relationship_nps", "ticket_csat", "onboarding", "exit")),
            C("title", "text", "Survey title."),
            C("created_at", "timestamptz", "When the survey was created."),
        ),
        ("survey_id",),
    ),
    Entity(
        "survey", "responses", "One row per submitted response.",
        (
            C("response_id", "text", "Response id.", key=True),
            C("survey_id", "text", "Survey answered."),
            C("respondent_email", "text", "Email the respondent gave (personal data)."),
            C("submitted_at", "timestamptz", "Submission time."),
            C("score", "integer", "NPS 0-10, CSAT 1-5 or onboarding 1-5; empty for exit."),
            C("comment", "text", "Free text."),
        ),
        ("response_id",),
    ),
    Entity(
        "survey", "exit_answers", "Exit-survey reasons for one response.",
        (
            C("response_id", "text", "Exit-survey response.", key=True),
            C("primary_reason", "text", "Main reason chosen (survey option code).",
              accepted=EXIT_REASON_OPTIONS),
            C("other_reasons", "text", "Other reasons chosen, ';'-separated option codes."),
            C("comment", "text", "Free text."),
        ),
        ("response_id",),
    ),
)

ENTITIES: tuple[Entity, ...] = CRM_ENTITIES + BILLING_ENTITIES + SURVEY_ENTITIES
SOURCES: tuple[str, ...] = ("crm", "billing", "survey")

# Columns the loader adds to every raw table.
LOAD_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("_batch_id", "text", "Load batch: source and logical date."),
    ("_logical_date", "date", "Logical date (data interval start) of the extract."),
    ("_source_file", "text", "Landing file the row came from."),
    ("_loaded_at", "timestamptz", "When the row was loaded."),
)


def entities_for(source: str) -> tuple[Entity, ...]:
    found = tuple(e for e in ENTITIES if e.source == source)
    if not found:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    return found


def entity(source: str, name: str) -> Entity:
    for e in entities_for(source):
        if e.name == name:
            return e
    raise ValueError(f"unknown entity {source}.{name}")


def _accepted_note(c: Column) -> str:
    """The accepted values, unless the description already names every one of them."""
    if not c.accepted_values:
        return ""
    words = set(re.findall(r"[a-z_]+", c.description))
    if set(c.accepted_values) <= words:
        return ""
    return " Accepted: " + ", ".join(f"`{v}`" for v in c.accepted_values) + "."


def to_markdown() -> str:
    lines = [
        "# Source contracts",
        "",
        "Generated from `plugins/defection_warehouse/sources/contracts.py` by",
        "`python -m defection_warehouse.sources.contracts`; do not edit by hand.",
        "",
        "CRM and survey timestamps are ISO 8601 with a UTC offset; billing timestamps are",
        "epoch seconds (UTC); amounts are integers in minor units. Every raw table also has",
        "the load columns " + ", ".join(f"`{n}`" for n, _, _ in LOAD_COLUMNS) + ".",
        "",
        *_billing_versions_markdown(),
    ]
    for e in ENTITIES:
        lines += [
            f"## `{e.raw_table}`",
            "",
            e.description,
            "",
            f"- primary key: {', '.join(e.primary_key)}",
            f"- extract: {e.mode}"
            + (f" on `{e.updated_column}`" if e.updated_column else "")
            + (f", endpoint `{e.endpoint}`" if e.endpoint else "")
            + (f", nested in {e.parent} at `{e.nested_path}`" if e.parent else ""),
            "",
            "| column | type | null | meaning |" + (" API path |" if e.source == "billing" else ""),
            "|---|---|---|---|" + ("---|" if e.source == "billing" else ""),
        ]
        for c in e.columns:
            meaning = c.description + _accepted_note(c)
            row = f"| {c.name} | {c.type} | {'yes' if c.nullable else 'no'} | {meaning} |"
            if e.source == "billing":
                row += f" `{c.path}` |"
            lines.append(row)
        lines.append("")
    return "\n".join(lines)


def _billing_versions_markdown() -> list[str]:
    by_name = {e.name: e for e in BILLING_ENTITIES}

    def where(table: str, column: str) -> str:
        if "." in column:  # another entity's column, joined in staging
            other, name = column.split(".")
            return (f"`{by_name[other].column(name).path}` of the line's price, "
                    f"`/v1/prices` (`{by_name[other].raw_table}.{name}`)")
        return f"`{by_name[table].column(column).path}` ({column})"

    lines = [
        "## Billing API version",
        "",
        f"The extractor sends `Stripe-Version: {BILLING_API_VERSION}`, the version it is",
        "written for. Set `BILLING_API_VERSION` (environment or `.env`) to pin another one,",
        f"e.g. `{CLOVER_API_VERSION}`: it reads the shape of that version too. Stripe",
        "answers a request without the header in the account's default version, and",
        f"{BASIL_API_VERSION} (and {CLOVER_API_VERSION} for discounts) moved fields the",
        "warehouse needs. Where the shapes differ the raw table has a column for each path;",
        "staging takes the older shape's column, else the newer one's, so the staging",
        "columns and everything built on them are the same in either shape. Lines of the",
        "newer shape no longer carry their price's recurring interval: it comes from the",
        "prices listed at `/v1/prices` (`raw_billing.prices`). From clover on the",
        "extractor expands `data.discount.source.coupon` on subscriptions to read the",
        "coupon's percent and amount off. The DAG reads the same setting.",
        "",
        f"| table | up to {BILLING_API_VERSION} | from | later path |",
        "|---|---|---|---|",
    ]
    for table, old, new, since in BILLING_SHAPES:
        lines.append(f"| `raw_billing.{table}` | {where(table, old)} | {since} | "
                     f"{where(table, new)} |")
    lines += [
        "",
        "Not read yet: basil also removed `invoice` from charges (the link is an invoice",
        "payment, `/v1/invoice_payments`); on an account at basil or later the charges land",
        "without `invoice_id`, and the first failed payment of a defection's last invoice is",
        "not found.",
        "",
    ]
    return lines


def to_dbt_sources(source: str) -> str:
    """dbt `sources:` YAML for one source's raw tables (descriptions from the contract)."""
    import yaml

    tables = []
    for e in entities_for(source):
        columns = [{"name": c.name, "description": c.description} for c in e.columns]
        columns += [{"name": n, "description": d} for n, _, d in LOAD_COLUMNS]
        tables.append({
            "name": e.name,
            "description": f"{e.description} Raw: every version landed, one row per "
                           f"({', '.join(e.primary_key)}, batch).",
            "columns": columns,
        })
    doc = {"version": 2, "sources": [{
        "name": source,
        "description": f"Raw {source} data as loaded by the raw loader (schema raw_{source}).",
        "schema": f"raw_{source}",
        "tables": tables,
    }]}
    header = ("# Generated from plugins/defection_warehouse/sources/contracts.py by\n"
              "# `python -m defection_warehouse.sources.contracts --dbt-sources`; do not edit.\n")
    return header + yaml.safe_dump(doc, sort_keys=False, width=100)


def dbt_sources_path(source: str) -> str:
    return f"dbt_project/models/staging/{source}/_{source}__sources.yml"


if __name__ == "__main__":
    if sys.argv[1:] == ["--dbt-sources"]:
        from defection_warehouse.config import PROJECT_ROOT

        for src in SOURCES:
            (PROJECT_ROOT / dbt_sources_path(src)).write_text(to_dbt_sources(src))
    else:
        sys.stdout.write(to_markdown())

"""Simulation of the sample subscription business, one customer at a time.

Every customer gets its own ``random.Random`` seeded from (seed, customer index), so the
sample is a pure function of the parameters. Global ids are handed out by counters in
customer order, which is also deterministic.

A customer's life, in the order it is simulated:

1. profile: segment, size, region, industry, plan and seats, latent causes (0-3);
2. sale: deal closed, subscription start, promised and actual go-live;
3. cause onsets: when each latent cause starts to show and becomes a churn risk;
4. defection: per billing period a hazard (sum of the visible causes' hazards) decides
   whether the customer presses cancel (voluntary, ends at period end) or, for
   financial distress, stops paying (involuntary, canceled when dunning runs out);
5. planted causes: the trigger plus every other cause whose trace is in place by the
   defection; a cause whose trace would be only half-built is switched off instead;
6. add-on, win-back, invoices and charges, usage snapshots, touchpoints, tickets, refunds
   and disputes, surveys, each shaped by the causes that are active at that time;
7. for every planted cause of a defection the trace is guaranteed inside the attribution
   lookback window (90 days, 180 for surveys) before the defection date.

``SampleParams.difficulty`` picks how much of real businesses' noise the sample carries
(``NOISE``): ``standard`` is the sample the rules were written beside; ``hard`` adds the
noise that makes one-account-at-a-time rules misfire (healthy customers with slow,
badly rated or bug tickets and detractor scores, low-touch small accounts, mostly silent
defectors, face-saving "too expensive", more causes at once, accounts billed without a
CRM link). The extra draws of ``hard`` come from a random stream of their own, so the
standard sample stays what it was.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import asdict, dataclass
from datetime import date

from defection_warehouse.sources.contracts import EXIT_REASON_OPTIONS

from . import catalog as cat
from . import names as nm
from .ids import Counter, IdMaker
from .timeline import DAY, HOUR, Calendar, day_ts, month_bounds

GENERATOR_VERSION = "1.0"
NEVER = 1 << 62

SEGMENTS = (("smb", 0.62), ("mid_market", 0.28), ("enterprise", 0.10))
REGIONS = ("na", "emea", "apac", "latam")
REGION_WEIGHTS = (45, 30, 15, 10)
REGION_WORKDAY_START = {"na": 14 * HOUR, "emea": 7 * HOUR, "apac": 0, "latam": 12 * HOUR}
WORKDAY = 9 * HOUR

# Latent causes: how often customers carry them and the monthly defection hazard each
# adds once visible (the strongest cause counts fully, further ones at SECONDARY_FACTOR).
CAUSE_WEIGHTS = {
    "poor_fit": 7, "oversold": 8, "failed_adoption": 12, "product_issues": 11,
    "poor_service": 7, "slow_resolution": 8, "hassle": 6, "neglect": 9, "goals_unmet": 9,
    "price": 10, "competitor": 8, "financial_distress": 12,
}
CAUSE_HAZARD = {
    "poor_fit": 0.12, "oversold": 0.11, "failed_adoption": 0.125, "product_issues": 0.11,
    "poor_service": 0.11, "slow_resolution": 0.10, "hassle": 0.10, "neglect": 0.10,
    "goals_unmet": 0.11, "price": 0.075, "competitor": 0.075, "financial_distress": 0.11,
}
SECONDARY_FACTOR = 0.5
CAUSE_COUNT = ((0, 0.50), (1, 0.35), (2, 0.11), (3, 0.04))
# A neglected account is never surveyed, so it cannot give detractor or CSAT scores.
EXCLUSIVE = {("neglect", "goals_unmet"), ("neglect", "poor_service")}

# EMEA customers on a German, French or British domain are billed in their own currency
# (at local list prices, catalog.local_unit_amount); everyone else in usd. Decided from
# the profile already drawn, so the currency takes no random number of its own.
CURRENCY_BY_TLD = {"de": "eur", "fr": "eur", "co.uk": "gbp"}

EXIT_SURVEY_RATE = 0.45
BILLING_FEEDBACK_RATE = 0.60
MISLEADING_RATE = 0.08
WINBACK_RATE = {False: 0.20, True: 0.08}  # by involuntary
DUNNING_DAYS = 30
LOOKBACK = 90 * DAY

TICKET_RATE = {"smb": 0.30, "mid_market": 0.55, "enterprise": 0.95}  # per month
BASE_CATEGORIES = (("how_to", 0.70), ("feature_request", 0.22), ("bug", 0.068),
                   ("outage", 0.01), ("billing", 0.002))
HEALTHY_CSAT = ((5, 0.60), (4, 0.30), (3, 0.095), (2, 0.004), (1, 0.001))
FAILURE_CODES = ("card_declined", "insufficient_funds", "expired_card", "processing_error")
# what a ticket-heavy account files: more bugs and outages, some billing questions
HEAVY_CATEGORIES = (("how_to", 0.50), ("feature_request", 0.20), ("bug", 0.24),
                    ("outage", 0.03), ("billing", 0.03))


@dataclass(frozen=True)
class Noise:
    """How much of real businesses' noise the sample carries (see ``NOISE``)."""

    cause_count: tuple[tuple[int, float], ...] = CAUSE_COUNT
    exit_survey_rate: float = EXIT_SURVEY_RATE
    billing_feedback_rate: float = BILLING_FEEDBACK_RATE
    # a defector who gave a reason names another cause than the real one
    misleading_rate: float = MISLEADING_RATE
    # a price or competitor leaver who said nothing is made to give billing feedback
    stated_only_feedback: float = 0.9
    # NPS answers of 4-6 from customers whose goals are met
    healthy_detractor_rate: float = 0.007
    # refunds a month for everybody
    refund_rate: float = 0.0008
    # --- only in the hard sample (0 draws nothing from the noise stream)
    # billing customers created without the CRM account id in their metadata
    unlinked_rate: float = 0.0
    # share of accounts per segment looked after every LOW_TOUCH_GAP days as their normal
    low_touch: tuple[tuple[str, float], ...] = ()
    # tickets of anyone answered and resolved slowly, rated 1-2
    slow_ticket_rate: float = 0.0
    low_csat_rate: float = 0.0
    # bug tickets left open until engineering ships a fix (BUG_FIX_DAYS later)
    bug_wait_rate: float = 0.0
    # accounts filing twice the tickets, a quarter of them bugs and outages
    ticket_heavy_rate: float = 0.0


LOW_TOUCH_GAP = (60, 150)  # days between touchpoints of a low-touch account
# share of NPS answers and ticket ratings a low-touch account's contacts skip
LOW_TOUCH_SURVEY_SKIP = 0.9
BUG_FIX_DAYS = (10, 45)
NOISE = {
    "standard": Noise(),
    "hard": Noise(
        cause_count=((0, 0.45), (1, 0.30), (2, 0.17), (3, 0.08)),
        exit_survey_rate=0.15, billing_feedback_rate=0.25, misleading_rate=0.30,
        stated_only_feedback=0.8, healthy_detractor_rate=0.10, refund_rate=0.004,
        unlinked_rate=0.04, low_touch=(("smb", 0.5), ("mid_market", 0.2)),
        slow_ticket_rate=0.15, low_csat_rate=0.25, bug_wait_rate=0.5,
        ticket_heavy_rate=0.25,
    ),
}


@dataclass(frozen=True)
class SampleParams:
    customers: int = 2000
    months: int = 24
    seed: int = 42
    end_date: date = date(2026, 10, 31)
    difficulty: str = "standard"

    def __post_init__(self) -> None:
        if not isinstance(self.customers, int) or not 1 <= self.customers <= 5_000_000:
            raise ValueError(f"customers must be a whole number from 1 to 5000000, "
                             f"got {self.customers!r}")
        if not isinstance(self.months, int) or not 1 <= self.months <= 120:
            raise ValueError(f"months must be a whole number from 1 to 120, got {self.months!r}")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be a whole number, got {self.seed!r}")
        if not isinstance(self.end_date, date):
            raise ValueError(f"end_date must be a date, got {self.end_date!r}")
        if self.difficulty not in NOISE:
            raise ValueError(f"difficulty must be one of {', '.join(NOISE)}, "
                             f"got {self.difficulty!r}")

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["end_date"] = self.end_date.isoformat()
        return d


def _pick(r: random.Random, pairs: tuple[tuple[object, float], ...]):
    u = r.random()
    for value, p in pairs:
        u -= p
        if u < 0:
            return value
    return pairs[-1][0]


def billing_currency(region: str, domain: str) -> str:
    """The currency a customer is billed in (see CURRENCY_BY_TLD)."""
    if region != "emea":
        return cat.CURRENCY
    return CURRENCY_BY_TLD.get(domain.split(".", 1)[1], cat.CURRENCY)


def _recase(email: str) -> str:
    """The same address with capitalised parts (Jane.Doe@Acme.com)."""
    local, domain = email.split("@")
    return ".".join(p.capitalize() for p in local.split(".")) + "@" + domain.capitalize()


def _stream(r: random.Random, a: int, b: int, per_month: float) -> list[int]:
    """Event times of a Poisson process with `per_month` events a month in [a, b)."""
    if per_month <= 0 or b <= a:
        return []
    rate = per_month / (30.4 * DAY)
    out = []
    t = a + r.expovariate(rate)
    while t < b:
        out.append(int(t))
        t += r.expovariate(rate)
    return out


class Sub:
    """One billing subscription as simulated (turned into Stripe JSON by the writers)."""

    __slots__ = (
        "id", "item_id", "price", "created", "bounds", "nper", "qty", "coupon", "discount_id",
        "canceled_at", "cancel_at", "ended_at", "cancel_at_period_end", "reason", "feedback",
        "comment", "dunning_k", "dunning_first", "invoices", "status", "period",
    )

    def __init__(self, sid: str, item_id: str, price: cat.Price, created: int,
                 bounds: list[int], nper: int, qty: list[int]) -> None:
        self.id = sid
        self.item_id = item_id
        self.price = price
        self.created = created
        self.bounds = bounds
        self.nper = nper
        self.qty = qty
        self.coupon: tuple[str, str, int] | None = None
        self.discount_id: str | None = None
        self.canceled_at: int | None = None
        self.cancel_at: int | None = None
        self.ended_at: int | None = None
        self.cancel_at_period_end = False
        self.reason: str | None = None
        self.feedback: str | None = None
        self.comment: str | None = None
        self.dunning_k: int | None = None
        self.dunning_first = 0
        self.invoices: list[Invoice] = []
        self.status = "active"
        self.period = 0

    def qty_at(self, ts: int) -> int:
        k = bisect_right(self.bounds, ts) - 1
        return self.qty[max(0, min(k, len(self.qty) - 1))]


class Invoice:
    __slots__ = ("id", "line_id", "k", "created", "period_start", "period_end", "qty",
                 "amount", "discount", "status", "reason", "charges", "paid_at",
                 "uncollectible_at")

    def __init__(self) -> None:
        self.charges: list[list] = []  # [id, created, amount, ok, failure_code, refunded, disputed]
        self.paid_at: int | None = None
        self.uncollectible_at: int | None = None


class BillingCustomer:
    __slots__ = ("id", "created", "email", "name", "account_id", "crm_linked", "delinquent",
                 "subs", "refunds", "disputes", "currency")


class Out:
    """Rows produced for a batch of customers."""

    def __init__(self) -> None:
        self.crm: dict[str, list[tuple]] = {
            "accounts": [], "contacts": [], "deals": [], "activities": [], "tickets": [],
            "usage_snapshots": [],
        }
        self.billing: list[BillingCustomer] = []
        self.responses: list[tuple] = []      # (submitted_ts, row)
        self.exit_answers: list[tuple] = []   # (submitted_ts, row)
        self.truth: list[tuple] = []


class _C:
    """State of the customer being simulated."""

    __slots__ = (
        "i", "r", "account_id", "segment", "region", "industry", "employees", "seats",
        "plan", "price", "causes", "dominant", "name", "domain", "owner", "contacts",
        "active_contacts", "start", "acct_created", "deal_created", "closed_at",
        "promised", "go_live", "onset", "visible", "base", "addon", "second", "ended",
        "request", "involuntary", "trigger", "planted", "end1", "tickets", "activities",
        "snapshots", "neglected", "wb", "billing", "deals", "responses", "exits",
        "n", "low_touch", "ticket_heavy",
    )


class Simulator:
    def __init__(self, params: SampleParams) -> None:
        self.params = params
        self.noise = NOISE[params.difficulty]
        self.cal = Calendar(params.months, params.end_date)
        self.H = self.cal.horizon
        self.WS = self.cal.window_start
        self.snap_times = [me + 23 * HOUR + 30 * 60 for me in self.cal.month_ends]
        master = random.Random(params.seed)
        self._cohort = self._cohorts(params.customers, params.months)
        self._owners = self._owner_pools(master, params.customers)
        self._domains: dict[str, int] = {}
        s = params.seed
        self.contact_id = Counter()
        self.deal_id = Counter()
        self.activity_id = Counter()
        self.ticket_id = Counter()
        self.cus_id = IdMaker("cus_", s)
        self.sub_id = IdMaker("sub_", s)
        self.si_id = IdMaker("si_", s)
        self.in_id = IdMaker("in_", s)
        self.il_id = IdMaker("il_", s)
        self.ch_id = IdMaker("ch_", s)
        self.re_id = IdMaker("re_", s)
        self.dp_id = IdMaker("dp_", s)
        self.di_id = IdMaker("di_", s)
        self.response_id = IdMaker("R_", s)
        self.surveys = self._survey_definitions()
        self._nps_survey_by_half = {k: sid for (k, sid) in self._nps_halves}

    # ------------------------------------------------------------------ setup
    @staticmethod
    def _cohorts(n: int, months: int) -> list[int]:
        """Start month of each customer: an initial base, then growing monthly intakes."""
        if months == 1:
            return [0] * n
        base = round(n * 0.35)
        weights = [1 + 0.6 * m / (months - 1) for m in range(1, months)]
        rest = n - base
        total = sum(weights)
        counts = [int(rest * w / total) for w in weights]
        short = rest - sum(counts)
        order = sorted(range(len(weights)), key=lambda k: -(rest * weights[k] / total
                                                            - counts[k]))
        for k in order[:short]:
            counts[k] += 1
        out = [0] * base
        for m, c in enumerate(counts, start=1):
            out += [m] * c
        return out

    @staticmethod
    def _owner_pools(r: random.Random, n: int) -> dict[tuple[str, bool], list[str]]:
        pools: dict[tuple[str, bool], list[str]] = {}
        used: set[str] = set()
        for region, w in zip(REGIONS, REGION_WEIGHTS, strict=True):
            for enterprise in (False, True):
                share = w / 100 * (0.1 if enterprise else 0.9)
                size = max(2, round(n * share / (60 if enterprise else 180)))
                pool = []
                while len(pool) < size:
                    name = f"{r.choice(nm.FIRST_NAMES)} {r.choice(nm.LAST_NAMES)}"
                    if name not in used or len(used) > 3000:
                        used.add(name)
                        pool.append(name)
                pools[(region, enterprise)] = pool
        return pools

    def _survey_definitions(self) -> list[tuple[str, str, str, int]]:
        """(survey_id, kind, title, created_ts); relationship NPS runs per half-year."""
        mk = IdMaker("SV_", self.params.seed)
        ws = self.WS
        defs = [
            (mk(), "onboarding", "Onboarding experience", ws),
            (mk(), "ticket_csat", "Support satisfaction (CSAT)", ws),
            (mk(), "exit", "Cancellation survey", ws),
        ]
        self._nps_halves: list[tuple[tuple[int, int], str]] = []
        start = self.cal.start_date
        y, h = start.year, (start.month - 1) // 6
        end = self.cal.end_date
        while (y, h) <= (end.year, (end.month - 1) // 6):
            sid = mk()
            created = max(ws, day_ts(date(y, 6 * h + 1, 1)))
            defs.append((sid, "relationship_nps", f"Relationship NPS {y} H{h + 1}", created))
            self._nps_halves.append(((y, h), sid))
            y, h = (y, 1) if h == 0 else (y + 1, 0)
        self.survey_by_kind = {kind: sid for sid, kind, _, _ in defs[:3]}
        return defs

    def nps_survey(self, ts: int) -> str:
        d = self.cal.day_str(ts)
        return self._nps_survey_by_half[(int(d[:4]), (int(d[5:7]) - 1) // 6)]

    # ------------------------------------------------------------------ helpers
    def _worktime(self, c: _C, day_start: int) -> int:
        """A moment during the customer's working day (UTC) on the given day."""
        return day_start - day_start % DAY + REGION_WORKDAY_START[c.region] \
            + c.r.randrange(WORKDAY)

    def _ticket(self, c: _C, opened: int, category: str, priority: str, *,
                slow: bool = False, unresolved: bool = False, low_csat: bool = False,
                csat_rate: float = 0.35) -> None:
        r = c.r
        if slow:
            first = opened + r.randrange(26 * HOUR, 96 * HOUR)
            resolved = opened + r.randrange(6 * DAY, 20 * DAY)
        else:
            first = opened + r.randrange(HOUR, 10 * HOUR)
            resolved = first + r.randrange(2 * HOUR, 60 * HOUR)
        if unresolved:
            resolved = None
        csat = csat_ts = None
        if c.low_touch and csat_rate < 1:  # a low-touch account seldom rates a ticket
            csat_rate *= 1 - LOW_TOUCH_SURVEY_SKIP
        if resolved is not None and not c.neglected and r.random() < csat_rate:
            csat_ts = resolved + r.randrange(HOUR, 48 * HOUR)
            if low_csat:
                csat = r.choice((1, 1, 2, 2, 2))
            elif slow or category in ("bug", "outage") and "product_issues" in c.causes:
                csat = r.choice((3, 4))
            else:
                csat = _pick(r, HEALTHY_CSAT)
        contact = self._contact_at(c, opened)[0]
        c.tickets.append([opened, category, priority, contact, first, resolved, csat, csat_ts])

    @staticmethod
    def _contact_at(c: _C, ts: int) -> list:
        """A contact of the account that exists at ts."""
        pool = c.active_contacts
        n = len(pool)
        while n > 1 and pool[n - 1][5] > ts:
            n -= 1
        return pool[c.r.randrange(n)]

    def _active(self, c: _C, cause: str, ts: int) -> bool:
        """The cause's pattern is on at ts (first life only, until the defection)."""
        return c.onset.get(cause, NEVER) <= ts < c.end1

    # ------------------------------------------------------------------ one customer
    def run_customer(self, i: int, out: Out) -> _C:
        c = _C()
        c.i = i
        c.r = random.Random(self.params.seed * 1_000_003 + i)
        # the hard sample's extra draws: a stream of their own, so that the standard
        # sample's draws from c.r stay the same
        c.n = random.Random(f"noise|{self.params.seed}|{i}")
        c.account_id = 1001 + i
        self._profile(c)
        self._sale(c)
        self._onsets(c)
        self._base_subscription(c)
        self._defection(c)
        self._plant(c)
        self._addon(c)
        self._winback(c)
        self._bill(c)
        self._usage(c)
        self._activities(c)
        self._tickets(c)
        self._money_hassle(c)
        self._surveys(c)
        self._emit(c, out)
        return c

    # 1. profile ---------------------------------------------------------------------
    def _profile(self, c: _C) -> None:
        r = c.r
        u = r.random()
        c.segment = "smb" if u < 0.62 else "mid_market" if u < 0.90 else "enterprise"
        c.region = r.choices(REGIONS, REGION_WEIGHTS)[0]
        ind, word = r.choices(nm.INDUSTRIES, nm.INDUSTRY_WEIGHTS)[0]
        c.industry = ind
        # latent causes
        k = _pick(r, self.noise.cause_count)
        causes: list[str] = []
        pool = dict(CAUSE_WEIGHTS)
        while len(causes) < k and pool:
            cause = r.choices(list(pool), list(pool.values()))[0]
            causes.append(cause)
            del pool[cause]
            for a, b in EXCLUSIVE:
                if cause in (a, b):
                    pool.pop(b if cause == a else a, None)
        c.causes = causes
        c.dominant = causes[0] if causes else None
        c.neglected = "neglect" in causes
        poor_fit = "poor_fit" in causes
        c.ticket_heavy = c.n.random() < self.noise.ticket_heavy_rate
        # size, plan, seats
        logu = lambda a, b: int(round(a * (b / a) ** r.random()))  # noqa: E731
        if c.segment == "smb":
            emp = logu(3, 249)
            if poor_fit:
                plan = "team"
                if r.random() < 0.5:
                    emp = r.randint(4, 24)
                seats = r.randint(2, min(9, emp))
            elif emp >= 25 and r.random() < 0.5:
                plan, seats = "team", logu(10, min(80, emp))
            else:
                plan, seats = "starter", logu(2, max(2, min(25, emp)))
            yearly = r.random() < 0.12
        elif c.segment == "mid_market":
            emp = logu(250, 2400)
            if poor_fit:
                plan, seats = "business", r.randint(15, 45)
            elif r.random() < 0.55:
                plan, seats = "business", logu(50, min(400, emp))
            else:
                plan, seats = "team", logu(15, 150)
            yearly = r.random() < 0.25
        else:
            emp = logu(2500, 60000)
            if poor_fit:
                plan, seats = "enterprise", r.randint(40, 180)
            elif r.random() < 0.55:
                plan, seats = "enterprise", logu(200, 3000)
            else:
                plan, seats = "business", logu(100, 1200)
            yearly = r.random() < 0.45
        c.employees = emp
        c.seats = seats
        c.plan = plan
        c.price = cat.price_for(plan, "year" if yearly else "month")
        if not poor_fit:
            assert seats >= c.price.min_seats and emp >= c.price.min_employees
        # name, domain, owner
        head = r.choice(nm.COMPANY_HEADS)
        tail = r.choice(nm.COMPANY_TAILS)
        legal = r.choice(nm.LEGAL_FORMS[c.region])
        c.name = f"{head}{tail} {word}" + (f" {legal}" if legal else "")
        tld = r.choice(nm.TLDS[c.region])
        slug = f"{head}{tail}".lower()
        if r.random() < 0.3:
            slug += "-" + word.lower()
        base = f"{slug}.{tld}"
        n = self._domains.get(base, 0)
        self._domains[base] = n + 1
        c.domain = base if n == 0 else f"{slug}{n + 1}.{tld}"
        c.owner = r.choice(self._owners[(c.region, c.segment == "enterprise")])
        # a low-touch account's normal; neglect is a drop from the account's normal
        low_touch = dict(self.noise.low_touch).get(c.segment, 0.0)
        c.low_touch = not c.neglected and c.n.random() < low_touch

    # 2. sale and go-live -------------------------------------------------------------
    def _sale(self, c: _C) -> None:
        r = c.r
        m = self._cohort[c.i]
        ms, ml = self.cal.month_starts[m], self.cal.month_lengths[m]
        last_day = min(ml - 1, (self.H - ms) // DAY)
        first_day = 1 if m == 0 and last_day >= 1 else 0
        c.start = self._worktime(c, ms + r.randint(first_day, last_day) * DAY)
        c.acct_created = max(self.WS + r.randrange(20 * HOUR),
                             c.start - r.randrange(20 * DAY, 90 * DAY))
        c.deal_created = c.acct_created + r.randrange(60, 2 * HOUR)
        c.closed_at = max(c.deal_created + HOUR, c.start - r.randrange(HOUR, 5 * DAY))
        lead = {"smb": (14, 45), "mid_market": (30, 75), "enterprise": (45, 120)}[c.segment]
        closed_day = c.closed_at - c.closed_at % DAY
        c.promised = closed_day + r.randint(*lead) * DAY
        if "oversold" in c.causes:
            c.go_live = None if r.random() < 0.3 else c.promised + r.randint(35, 120) * DAY
        else:
            c.go_live = c.promised + r.randint(-10, 14) * DAY
            c.go_live = max(c.go_live, c.start - c.start % DAY)
        # contacts
        n_contacts = {"smb": (2, 3), "mid_market": (3, 5), "enterprise": (4, 7)}[c.segment]
        n_contacts = r.randint(*n_contacts)
        contacts = []
        seen: set[str] = set()
        for k in range(n_contacts):
            first, last = r.choice(nm.FIRST_NAMES), r.choice(nm.LAST_NAMES)
            local = f"{first}.{last}".lower()
            j = 2
            while local in seen:
                local = f"{first}.{last}{j}".lower()
                j += 1
            seen.add(local)
            title = r.choice(nm.PRIMARY_TITLES if k == 0 else nm.CONTACT_TITLES)
            created = min(c.acct_created + r.randrange(HOUR, 3 * DAY), c.start - HOUR)
            if k >= 2 and r.random() < 0.25:  # joined the account later
                later = c.start + r.randrange(20 * DAY, 400 * DAY)
                if later <= self.H - HOUR:
                    created = later
            deleted = None
            if k > 0 and r.random() < 0.015:
                deleted = created + r.randrange(10 * DAY, 300 * DAY)
                if deleted > self.H:
                    deleted = None
            contacts.append([self.contact_id(), first, last, f"{local}@{c.domain}", title,
                             created, deleted])
        c.contacts = contacts
        c.active_contacts = sorted((ct for ct in contacts if ct[6] is None),
                                   key=lambda ct: ct[5]) or contacts[:1]

    # 3. cause onsets -----------------------------------------------------------------
    def _onsets(self, c: _C) -> None:
        r = c.r
        s = c.start
        onset: dict[str, int] = {}
        visible: dict[str, int] = {}
        for cause in c.causes:
            if cause == "poor_fit":
                o, v = s, s
            elif cause == "oversold":
                o, v = c.promised, c.promised + 31 * DAY
            elif cause == "failed_adoption":
                snaps = [t for t in self.snap_times if t > s][:2]
                o = s
                v = snaps[1] + HOUR if len(snaps) == 2 else NEVER
            elif cause == "slow_resolution":
                o, v = s, s + r.randint(30, 240) * DAY
            elif cause in ("product_issues", "poor_service"):
                o = s + r.randint(10, 300) * DAY
                v = o + (30 if cause == "product_issues" else 20) * DAY
            elif cause == "hassle":
                o = s + r.randint(20, 300) * DAY
                v = o + 20 * DAY
            elif cause == "neglect":
                o = s + r.randint(30, 300) * DAY
                v = o + 50 * DAY
            elif cause == "goals_unmet":
                o = s + r.randint(60, 300) * DAY
                v = o + 30 * DAY
            elif cause == "price":
                o = s if r.random() < 0.3 else s + r.randint(0, 360) * DAY
                v = o
            elif cause == "competitor":
                o = s + r.randint(20, 360) * DAY
                v = o
            else:  # financial_distress: late payments first, then dunning
                o = s + r.randint(30, 300) * DAY
                v = o + 30 * DAY
            onset[cause] = o
            visible[cause] = v
        c.onset = onset
        c.visible = visible

    # 4. base subscription and seat changes --------------------------------------------
    def _base_subscription(self, c: _C) -> None:
        r = c.r
        price = c.price
        bounds = month_bounds(c.start, price.months, self.H)
        nper = len(bounds) - 1  # periods starting on or before the horizon
        qty = [c.seats]
        poor_fit = "poor_fit" in c.causes
        grow = {"smb": 0.015, "mid_market": 0.02, "enterprise": 0.025}[c.segment]
        shrink = 0.03 if "failed_adoption" in c.causes else 0.006
        if price.months == 12:
            grow, shrink = grow * 6, shrink * 6
        expansions = []
        for k in range(1, nper):
            q = qty[-1]
            if not poor_fit:
                u = r.random()
                if u < grow and q < c.employees:
                    nq = min(c.employees, int(q * r.uniform(1.05, 1.3)) + 1)
                    expansions.append((k, nq - q))
                    q = nq
                elif u < grow + shrink and q > price.min_seats:
                    q = max(price.min_seats, int(q * r.uniform(0.8, 0.95)))
            qty.append(q)
        c.base = Sub(self.sub_id(), self.si_id(), price, c.start, bounds, nper, qty)
        u = r.random()
        coupon_rate = {"smb": 0.12, "mid_market": 0.18, "enterprise": 0.20}[c.segment]
        if u < coupon_rate:
            c.base.coupon = r.choice(cat.COUPONS)
            c.base.discount_id = self.di_id()
        c.deals = []
        for k, added in expansions:
            c.deals.append(("expansion", bounds[k], added))

    # 5. defection --------------------------------------------------------------------
    def _defection(self, c: _C) -> None:
        r = c.r
        sub = c.base
        b = sub.bounds
        H = self.H
        c.ended = c.request = c.trigger = None
        c.involuntary = False
        if not c.causes:
            return
        yearly = sub.price.months == 12
        hazard = {cause: CAUSE_HAZARD[cause] * (1.0 if cause == c.dominant else SECONDARY_FACTOR)
                  for cause in c.causes}
        for k in range(sub.nper):
            ps, pe = b[k], b[k + 1]
            cutoff = pe - (45 * DAY if yearly else 2 * DAY)
            elig = [x for x in c.causes if c.visible[x] <= cutoff]
            if not elig:
                continue
            h = sum(hazard[x] for x in elig)
            if yearly:
                h = 1 - (1 - h) ** 12
            if r.random() >= h:
                continue
            trigger = r.choices(elig, [hazard[x] for x in elig])[0]
            c.trigger = trigger
            if trigger == "financial_distress":
                kd = k + 1
                if kd >= sub.nper:  # the failing renewal is after the horizon
                    c.trigger = None
                    return
                first = b[kd] + HOUR + r.randrange(1800)
                sub.dunning_k = kd
                sub.dunning_first = first
                end = min(first + DUNNING_DAYS * DAY, b[kd + 1] - HOUR)
                c.request = end
                c.involuntary = True
                sub.nper = kd + 1
                if end <= H:
                    c.ended = end
                    sub.canceled_at = sub.ended_at = end
                    sub.reason = "payment_failed"
                return
            lo = max(ps + HOUR, c.visible[trigger], pe - 60 * DAY if yearly else 0)
            hi = pe - (2 * DAY if yearly else 2 * HOUR)
            if k == 0 and not yearly and trigger in ("poor_fit", "price", "competitor") \
                    and r.random() < 0.35:
                req = max(ps + r.randrange(DAY, 8 * DAY), c.visible[trigger])
                if req < pe - HOUR and req <= H:
                    c.request = req
                    c.ended = req
                    sub.canceled_at = sub.ended_at = req
                    sub.reason = "cancellation_requested"
                    sub.nper = 1
                    return
            req = r.randint(lo, max(lo, hi))
            if req > H:
                c.trigger = None
                return
            c.request = req
            sub.canceled_at = req
            sub.cancel_at = pe
            sub.cancel_at_period_end = True
            sub.reason = "cancellation_requested"
            sub.nper = k + 1
            if pe <= H:
                c.ended = pe
                sub.ended_at = pe
            return

    # 6. planted causes ---------------------------------------------------------------
    def _plant(self, c: _C) -> None:
        """Decide the planted causes; switch off traces that would be only half there."""
        c.planted = None
        c.end1 = c.ended if c.ended is not None else self.H + 1
        if c.ended is None:  # no defection (or still pending / in dunning at the horizon)
            return
        D = c.ended
        planted = [c.trigger]
        for cause in c.causes:
            if cause == c.trigger:
                continue
            o = c.onset[cause]
            if cause == "poor_fit":
                ok = True
            elif cause == "oversold":
                ok = c.visible[cause] <= D
            elif cause == "failed_adoption":
                ok = sum(1 for t in self.snap_times if c.start <= t < D) >= 2
            elif cause in ("product_issues", "poor_service", "hassle"):
                ok = o <= D - 20 * DAY
            elif cause == "slow_resolution":
                ok = D - c.start >= 30 * DAY
            elif cause == "neglect":
                ok = o <= D - 50 * DAY
            elif cause == "goals_unmet":
                ok = o <= D - 30 * DAY
            elif cause in ("price", "competitor"):
                ok = o <= c.request
            else:  # financial_distress only ever ends in involuntary churn
                ok = False
            if ok:
                planted.append(cause)
            elif cause not in ("poor_fit", "oversold", "failed_adoption"):
                c.onset[cause] = NEVER
        if "neglect" in c.causes and c.onset["neglect"] == NEVER:
            c.neglected = False
        c.planted = planted
        # A late go-live that would land after the defection never happens.
        if c.go_live is not None and c.go_live >= D:
            c.go_live = None

    # 7. add-on subscription ----------------------------------------------------------
    def _addon(self, c: _C) -> None:
        r = c.r
        c.addon = None
        if r.random() >= 0.10:
            return
        base = c.base
        last = base.nper - 1
        if r.random() < 0.6 or last == 0 or base.dunning_k is not None and base.dunning_k <= 1:
            j = 0
        else:
            top = min(last, 6 if base.price.months == 1 else 1)
            if base.dunning_k is not None:
                top = min(top, base.dunning_k - 1)
            j = r.randint(1, top)
        start = base.bounds[j] + (30 if j == 0 else 0)
        if start > self.H or (c.ended is not None and start >= c.ended):
            return
        kind = "insights" if r.random() < 0.7 else "premium_support"
        price = cat.price_for(kind, base.price.interval)
        q = max(1, int(base.qty[j] * r.uniform(0.3, 1.0))) if price.per_seat else 1
        bounds = base.bounds[j:]
        nper = base.nper - j
        sub = Sub(self.sub_id(), self.si_id(), price, start, bounds, nper, [q] * nper)
        sub.bounds = [start] + bounds[1:]
        # contraction: cancel only the add-on
        if nper >= 3 and r.random() < 0.25:
            m = r.randint(1, nper - 2)
            ps, pe = sub.bounds[m], sub.bounds[m + 1]
            req = self._worktime(c, r.randint(ps + DAY, max(ps + DAY, pe - 2 * DAY)))
            req = min(max(req, ps + HOUR), pe - HOUR)
            if req <= self.H:
                sub.canceled_at = req
                sub.cancel_at = pe
                sub.cancel_at_period_end = True
                sub.reason = "cancellation_requested"
                if r.random() < 0.4:
                    sub.feedback = "unused"
                    sub.comment = r.choice(nm.ADDON_CANCEL_COMMENTS)
                sub.nper = m + 1
                if pe <= self.H:
                    sub.ended_at = pe
                c.addon = sub
                return
        # otherwise it follows the base subscription
        b = c.base
        sub.canceled_at, sub.cancel_at, sub.ended_at = b.canceled_at, b.cancel_at, b.ended_at
        sub.cancel_at_period_end = b.cancel_at_period_end
        sub.reason = b.reason
        if b.dunning_k is not None:
            sub.dunning_k = b.dunning_k - j
            sub.dunning_first = b.dunning_first + 5
        if b.ended_at is not None and b.cancel_at is None and b.dunning_k is None:
            sub.nper = 1  # canceled immediately with the base
        c.addon = sub

    # 8. win-back ---------------------------------------------------------------------
    def _winback(self, c: _C) -> None:
        r = c.r
        c.second = None
        c.wb = None
        if c.ended is None or r.random() >= WINBACK_RATE[c.involuntary]:
            return
        t = self._worktime(c, c.ended + r.randint(20, 170) * DAY)
        if t > self.H - 2 * HOUR:
            return
        price = c.base.price
        bounds = month_bounds(t, price.months, self.H)
        nper = len(bounds) - 1
        q = max(price.min_seats if "poor_fit" not in c.causes else 1,
                c.base.qty[c.base.nper - 1])
        c.second = Sub(self.sub_id(), self.si_id(), price, t, bounds, nper, [q] * nper)
        c.wb = t

    # 9. invoices and charges ---------------------------------------------------------
    def _bill(self, c: _C) -> None:
        r = c.r
        H = self.H
        bc = BillingCustomer()
        bc.id = self.cus_id()
        bc.created = c.start - r.randrange(60, 600)
        bc.account_id = c.account_id
        bc.crm_linked = not c.n.random() < self.noise.unlinked_rate
        primary = c.contacts[0]
        u = r.random()
        if u < 0.12:
            bc.email = f"{r.choice(nm.BILLING_MAILBOXES)}@{c.domain}"
        elif u < 0.20:
            bc.email = _recase(primary[3])
        else:
            bc.email = primary[3]
        bc.name = c.name
        bc.currency = billing_currency(c.region, c.domain)
        bc.refunds = []
        bc.disputes = []
        subs = [c.base] + ([c.addon] if c.addon else []) + ([c.second] if c.second else [])
        bc.subs = subs
        delinquent = False
        for sub in subs:
            p = sub.price
            unit_amount = cat.local_unit_amount(p.unit_amount, bc.currency)
            pct = sub.coupon[2] if sub.coupon else 0
            for k in range(sub.nper):
                created = sub.created + 5 if k == 0 else sub.bounds[k]
                if created > H:
                    sub.nper = k
                    break
                inv = Invoice()
                inv.id = self.in_id()
                inv.line_id = self.il_id()
                inv.k = k
                inv.created = created
                inv.period_start = sub.bounds[k]
                inv.period_end = sub.bounds[k + 1]
                q = sub.qty[k]
                inv.qty = q
                inv.amount = q * unit_amount
                inv.discount = inv.amount * pct // 100
                inv.reason = "subscription_create" if k == 0 else "subscription_cycle"
                total = inv.amount - inv.discount
                first = created + (r.randrange(20, 90) if k == 0 else HOUR + r.randrange(1800))
                if sub.dunning_k == k:
                    first = sub.dunning_first
                    n_attempts = r.choice((3, 4))
                    offsets = (0, 3 * DAY, 7 * DAY, 14 * DAY)[:n_attempts]
                    for off in offsets:
                        t = first + off + r.randrange(600)
                        if t <= H:
                            code = "insufficient_funds" if r.random() < 0.6 else "card_declined"
                            inv.charges.append([self.ch_id(), t, total, False, code, 0, False])
                    if sub.ended_at is not None:
                        inv.status = "uncollectible"
                        inv.uncollectible_at = sub.ended_at
                    else:
                        inv.status = "open"
                        delinquent = True
                elif first > H:
                    inv.status = "draft"
                else:
                    distress = sub is not c.second and self._active(c, "financial_distress",
                                                                    first)
                    p_fail = 0.35 if distress else 0.012
                    if k > 0 and r.random() < p_fail:
                        code = "insufficient_funds" if distress else r.choice(FAILURE_CODES)
                        inv.charges.append([self.ch_id(), first, total, False, code, 0, False])
                        retry = first + r.randrange(2 * DAY, 5 * DAY)
                        if retry <= H:
                            inv.charges.append([self.ch_id(), retry, total, True, None, 0,
                                                False])
                            inv.status = "paid"
                            inv.paid_at = retry
                        else:
                            inv.status = "open"
                            delinquent = True
                    else:
                        inv.charges.append([self.ch_id(), first, total, True, None, 0, False])
                        inv.status = "paid"
                        inv.paid_at = first
                sub.invoices.append(inv)
            # state at the horizon
            last = sub.invoices[-1] if sub.invoices else None
            if sub.ended_at is not None and sub.ended_at <= H:
                sub.status = "canceled"
                sub.period = len(sub.invoices) - 1
            else:
                sub.ended_at = None
                sub.period = bisect_right(sub.bounds, H) - 1
                sub.period = min(sub.period, len(sub.bounds) - 2)
                sub.status = "past_due" if last is not None and last.status == "open" \
                    else "active"
        bc.delinquent = delinquent
        c.billing = bc

    # 10. usage snapshots -------------------------------------------------------------
    def _usage(self, c: _C) -> None:
        r = c.r
        rows = []
        base_share = r.uniform(0.62, 0.88)
        failed = "failed_adoption" in c.causes
        oversold = "oversold" in c.causes
        lives = [(c.base, c.start, c.end1, True)]
        if c.second is not None:
            lives.append((c.second, c.wb, self.H + 1, False))
        for sub, a, e, first_life in lives:
            for t in self.snap_times:
                if t < a:
                    continue
                if t >= e:
                    break
                seats = sub.qty_at(t)
                if first_life and failed:
                    share = r.uniform(0.03, 0.25)
                    active = min(int(seats * share), -(-3 * seats // 10) - 1)
                else:
                    if first_life and oversold and (c.go_live is None or t < c.go_live):
                        share = r.uniform(0.36, 0.5)
                    elif t - a < 31 * DAY:
                        share = r.uniform(0.40, 0.60)
                    else:
                        share = min(0.95, max(0.55, base_share + r.uniform(-0.06, 0.06)))
                    active = max(int(round(seats * share)), -(-7 * seats // 20))
                rows.append((t, active, seats))
        c.snapshots = rows

    # 11. touchpoints -----------------------------------------------------------------
    def _activities(self, c: _C) -> None:
        r = c.r
        H = self.H
        acts = []
        ent = c.segment == "enterprise"
        silence = c.onset.get("neglect", NEVER) if c.neglected else NEVER
        lives = [(c.start, c.end1, silence)]
        if c.second is not None:
            lives.append((c.wb, H + 1, NEVER))
        for a, e, quiet in lives:
            day = a + r.randint(0, 2) * DAY
            n = 0
            while True:
                t = max(a, self._worktime(c, day))
                if t >= e or t >= quiet or t > H - 3 * HOUR:
                    break
                if ent and n % 6 == 5:
                    kind = "business_review"
                else:
                    kind = r.choices(("email", "call", "meeting", "business_review"),
                                     (45, 30, 20, 5))[0]
                acts.append((t, kind))
                n += 1
                if c.low_touch:
                    day += c.n.randint(*LOW_TOUCH_GAP) * DAY
                else:
                    day += r.randint(7, 21) * DAY
        # a couple of win-back attempts after a defection (not for neglected accounts)
        if c.ended is not None and c.second is None and not c.neglected:
            for _ in range(r.choice((0, 1, 1, 2))):
                t = self._worktime(c, c.ended + r.randint(5, 60) * DAY)
                if t <= H - 3 * HOUR:
                    acts.append((t, r.choice(("call", "email"))))
        c.activities = acts

    # 12. support tickets -------------------------------------------------------------
    def _tickets(self, c: _C) -> None:
        r = c.r
        H = self.H
        c.tickets = []
        D = c.ended
        first_end = (D - 3 * DAY) if D is not None else H
        rate = TICKET_RATE[c.segment] * (2 if c.ticket_heavy else 1)
        noise = self.noise
        slow_on = c.onset.get("slow_resolution", NEVER)

        def slow(t: int) -> bool:
            return slow_on <= t < c.end1

        def base_ticket(t: int, second: bool) -> None:
            cat_ = _pick(r, HEAVY_CATEGORIES if c.ticket_heavy else BASE_CATEGORIES)
            pri = _pick(r, (("low", 0.25), ("normal", 0.55), ("high", 0.17), ("urgent", 0.03)))
            if cat_ == "outage":
                pri = r.choice(("high", "urgent"))
            poor = not second and self._active(c, "poor_service", t)
            # healthy customers' tickets are sometimes slow or badly rated too (hard)
            noisy_slow = c.n.random() < noise.slow_ticket_rate
            noisy_low = c.n.random() < noise.low_csat_rate
            self._ticket(c, t, cat_, pri, slow=not second and slow(t) or noisy_slow,
                         low_csat=poor and r.random() < 0.7 or noisy_low,
                         csat_rate=0.8 if poor else 0.35)
            # a bug waits for engineering's fix, however quick the first answer (hard)
            tk = c.tickets[-1]
            if cat_ == "bug" and tk[5] is not None and c.n.random() < noise.bug_wait_rate:
                tk[5] = t + c.n.randint(*BUG_FIX_DAYS) * DAY + c.n.randrange(DAY)
                if tk[7] is not None:
                    tk[7] = tk[5] + c.n.randrange(HOUR, 48 * HOUR)

        for t in _stream(r, c.start + 2 * DAY, first_end, rate):
            base_ticket(t, False)
        if c.second is not None:
            for t in _stream(r, c.wb + 2 * DAY, H, rate):
                base_ticket(t, True)
        # cause patterns (first life)
        if "product_issues" in c.causes:
            o = c.onset["product_issues"]
            for t in _stream(r, o, min(first_end, c.end1), 1.3):
                self._product_ticket(c, t, slow(t))
        if "poor_service" in c.causes:
            o = c.onset["poor_service"]
            for t in _stream(r, o, min(first_end, c.end1), 0.5):
                self._ticket(c, t, r.choice(("how_to", "how_to", "feature_request")),
                             "normal", slow=slow(t), low_csat=r.random() < 0.7, csat_rate=0.8)
        if "slow_resolution" in c.causes:
            for t in _stream(r, max(c.start + 2 * DAY, c.onset["slow_resolution"]),
                             min(first_end, c.end1), 0.5):
                self._ticket(c, t, r.choice(("how_to", "how_to", "feature_request")),
                             "normal", slow=True)
        if "hassle" in c.causes:
            o = c.onset["hassle"]
            for t in _stream(r, o, min(first_end, c.end1), 0.6):
                self._ticket(c, t, "billing", r.choice(("normal", "high")), slow=slow(t))
        # guaranteed traces inside the lookback window of a defection
        if c.planted:
            lo = D - 85 * DAY
            for cause in c.planted:
                # the primary cause leaves more evidence than a contributing one
                strong = cause == c.trigger
                if cause == "product_issues":
                    o = max(lo, c.onset[cause])
                    have = sum(1 for tk in c.tickets
                               if tk[1] in ("bug", "outage") and D - 88 * DAY <= tk[0] < D)
                    for _ in range(max(0, (5 if strong else 3) - have)):
                        self._product_ticket(c, r.randint(o, D - 2 * DAY), slow(o))
                    if r.random() < 0.35:
                        t = r.randint(o, D - 2 * DAY)
                        self._ticket(c, t, "bug", r.choice(("high", "urgent")),
                                     slow=slow(t), unresolved=True)
                elif cause == "poor_service":
                    have = sum(1 for tk in c.tickets if tk[6] is not None and tk[6] <= 2
                               and tk[0] >= D - 88 * DAY and tk[7] < D)
                    for _ in range(max(0, (2 if strong else 1) - have)):
                        o = max(lo, c.onset[cause])
                        t = r.randint(o, max(o, D - (25 if slow(o) else 6) * DAY))
                        self._ticket(c, t, "how_to", "normal", slow=slow(t), low_csat=True,
                                     csat_rate=1.0)
                        tk = c.tickets[-1]
                        tk[7] = min(tk[7], D - HOUR)
                elif cause == "slow_resolution":
                    have = sum(1 for tk in c.tickets if D - 88 * DAY <= tk[0] < D - 20 * DAY)
                    o = max(lo, c.start + DAY)
                    for _ in range(max(0, (3 if strong else 2) - have)):
                        t = r.randint(o, max(o, D - 21 * DAY))
                        self._ticket(c, t, r.choice(("how_to", "feature_request")), "normal",
                                     slow=True)
                elif cause == "hassle":
                    have = sum(1 for tk in c.tickets
                               if tk[1] == "billing" and D - 88 * DAY <= tk[0] < D)
                    for _ in range(max(0, (2 if strong else 1) - have)):
                        o = max(lo, c.onset[cause])
                        self._ticket(c, r.randint(o, D - 2 * DAY), "billing", "normal",
                                     slow=slow(o))
        # clip to the horizon
        for tk in c.tickets:
            if tk[4] > H:
                tk[4] = tk[5] = tk[6] = tk[7] = None
            elif tk[5] is not None and tk[5] > H:
                tk[5] = tk[6] = tk[7] = None
            elif tk[7] is not None and tk[7] > H:
                tk[6] = tk[7] = None
        c.tickets.sort(key=lambda tk: tk[0])

    def _product_ticket(self, c: _C, t: int, slow: bool) -> None:
        r = c.r
        cat_ = "bug" if r.random() < 0.75 else "outage"
        pri = _pick(r, (("normal", 0.45), ("high", 0.40), ("urgent", 0.15)))
        self._ticket(c, t, cat_, pri, slow=slow)

    # 13. refunds and disputes --------------------------------------------------------
    def _money_hassle(self, c: _C) -> None:
        r = c.r
        H = self.H
        bc = c.billing
        charges = [ch for sub in bc.subs for inv in sub.invoices for ch in inv.charges
                   if ch[3]]
        if not charges:
            return
        charges.sort(key=lambda ch: ch[1])
        times = [ch[1] for ch in charges]

        def refund(t: int) -> bool:
            k = bisect_right(times, t - DAY) - 1
            while k >= 0 and (charges[k][5] or charges[k][6]):
                k -= 1
            if k < 0 or t > H:
                return False
            ch = charges[k]
            amount = ch[2] if r.random() < 0.5 else max(100, ch[2] * r.randint(10, 60) // 100)
            amount = min(amount, ch[2])
            if amount <= 0:
                return False
            ch[5] = amount
            reason = "requested_by_customer" if r.random() < 0.8 else "duplicate"
            bc.refunds.append((self.re_id(), ch[0], amount, reason, t))
            return True

        def dispute(t: int) -> bool:
            k = bisect_right(times, t - 2 * DAY) - 1
            while k >= 0 and (charges[k][5] or charges[k][6]):
                k -= 1
            if k < 0 or t > H or charges[k][2] <= 0:
                return False
            ch = charges[k]
            ch[6] = True
            reason = r.choice(("general", "product_unacceptable", "subscription_canceled",
                               "credit_not_processed"))
            if t + 60 * DAY <= H:
                status = r.choice(("won", "lost", "lost"))
            else:
                status = r.choice(("needs_response", "under_review"))
            bc.disputes.append((self.dp_id(), ch[0], ch[2], reason, status, t))
            return True

        first_end = c.ended - 2 * DAY if c.ended is not None else H
        # rare noise for everybody
        for t in _stream(r, c.start + 30 * DAY, first_end, self.noise.refund_rate):
            refund(t)
        if "hassle" in c.causes and c.onset["hassle"] < NEVER:
            o = c.onset["hassle"]
            for t in _stream(r, o, min(first_end, c.end1), 0.15):
                refund(t)
            for t in _stream(r, o, min(first_end, c.end1), 0.03):
                dispute(t)
            if c.planted and "hassle" in c.planted:
                D = c.ended
                lo = max(D - 85 * DAY, o)
                have = any(D - 88 * DAY <= x[-1] < D for x in bc.refunds) or \
                    any(D - 88 * DAY <= x[-1] < D for x in bc.disputes)
                if not have:
                    t = min(self._worktime(c, r.randint(lo, D - 3 * DAY)), D - HOUR)
                    if r.random() < 0.75:
                        refund(t) or dispute(t)
                    else:
                        dispute(t) or refund(t)
                # a primary hassle cause usually escalates to a chargeback
                if c.trigger == "hassle" and r.random() < 0.5 and \
                        not any(D - 88 * DAY <= x[-1] < D for x in bc.disputes):
                    dispute(min(self._worktime(c, r.randint(lo, D - 3 * DAY)), D - HOUR))

    # 14. surveys and stated reasons --------------------------------------------------
    def _respondent_email(self, c: _C, contact: list) -> str:
        r = c.r
        u = r.random()
        if u < 0.03:  # identity noise: an address that matches no contact
            if r.random() < 0.6:
                return f"{contact[1]}.{contact[2]}{r.randint(1, 99)}@" \
                       f"{r.choice(nm.PERSONAL_DOMAINS)}".lower()
            return f"{contact[1][0]}{contact[2]}@{c.domain}".lower()
        if u < 0.05:  # same address, different case
            return _recase(contact[3])
        return contact[3]

    def _response(self, c: _C, survey: str, ts: int, contact: list, score: int | None,
                  comment: str | None, noise: bool = True) -> str:
        rid = self.response_id()
        email = self._respondent_email(c, contact) if noise else contact[3]
        c.responses.append((ts, (rid, survey, email,
                                 self.cal.iso_ts(ts), score, comment)))
        return rid

    def _nps_score(self, c: _C, ts: int) -> int:
        r = c.r
        if self._active(c, "goals_unmet", ts):
            return r.choice((0, 1, 2, 3, 3, 4, 4, 5, 5, 5, 6, 6, 6))
        u = r.random()
        if u < self.noise.healthy_detractor_rate:
            return r.randint(4, 6)
        if u < 0.475:
            return r.choice((7, 8))
        return r.choice((9, 10))

    def _surveys(self, c: _C) -> None:
        r = c.r
        H = self.H
        c.responses = []
        c.exits = []
        lives = [(c.start, c.end1)] + ([(c.wb, H + 1)] if c.second is not None else [])
        if not c.neglected:
            # relationship NPS: twice a year per account, a share of contacts answers
            phase = r.randrange(6)
            for m, ms in enumerate(self.cal.month_starts):
                if m % 6 != phase:
                    continue
                wave = ms + r.randint(2, 24) * DAY
                if not any(a <= wave < e for a, e in lives):
                    continue
                for ct in c.active_contacts:
                    if ct[5] > wave or r.random() >= 0.3:
                        continue
                    # low-touch accounts seldom answer surveys either (hard)
                    if c.low_touch and c.n.random() < LOW_TOUCH_SURVEY_SKIP:
                        continue
                    t = self._worktime(c, wave + r.randint(0, 4) * DAY)
                    if t > H or not any(a <= t < e for a, e in lives):
                        continue
                    score = self._nps_score(c, t)
                    band = "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"
                    comment = r.choice(nm.NPS_COMMENTS[band]) if r.random() < 0.25 else None
                    self._response(c, self.nps_survey(t), t, ct, score, comment)
            # onboarding survey after go-live
            if c.go_live is not None and r.random() < 0.55:
                t = self._worktime(c, c.go_live + r.randint(7, 21) * DAY)
                if t <= H and t < c.end1:
                    late = c.go_live > c.promised + 30 * DAY
                    score = r.choice((2, 3)) if late else _pick(r, ((5, 0.45), (4, 0.45),
                                                                    (3, 0.10)))
                    self._response(c, self.survey_by_kind["onboarding"], t,
                                   c.active_contacts[0], score, None)
            # ticket CSAT answers
            for tk in c.tickets:
                if tk[6] is not None:
                    ct = next(x for x in c.contacts if x[0] == tk[3])
                    self._response(c, self.survey_by_kind["ticket_csat"], tk[7], ct, tk[6],
                                   None)
        # goals_unmet: a detractor answer inside the survey lookback window
        if c.planted and "goals_unmet" in c.planted:
            D = c.ended
            emails = {ct[3] for ct in c.contacts}
            nps = set(self._nps_survey_by_half.values())
            have = sum(1 for t, row in c.responses
                       if D - 170 * DAY <= t < D - 5 * DAY and row[4] is not None
                       and row[4] <= 6 and row[1] in nps and row[2].lower() in emails)
            for _ in range(max(0, (2 if c.trigger == "goals_unmet" else 1) - have)):
                lo = max(c.onset["goals_unmet"], D - 150 * DAY, c.start + 14 * DAY)
                t = self._worktime(c, r.randint(lo, max(lo, D - 7 * DAY)))
                t = min(t, D - 5 * DAY)
                self._response(c, self.nps_survey(t), t, self._contact_at(c, t),
                               r.randint(0, 6), r.choice(nm.NPS_COMMENTS["detractor"]),
                               noise=False)
        self._stated(c)

    def _stated(self, c: _C) -> None:
        """Exit survey and billing cancellation feedback of a voluntary cancellation."""
        r = c.r
        if c.request is None or c.involuntary:
            return
        trigger = c.trigger
        planted = c.planted or [trigger]
        noise = self.noise
        survey = r.random() < noise.exit_survey_rate
        feedback = r.random() < noise.billing_feedback_rate
        if trigger in cat.STATED_ONLY and not (survey or feedback) and \
                r.random() < noise.stated_only_feedback:
            feedback = True
        stated = trigger
        misleading = trigger not in cat.STATED_ONLY and r.random() < noise.misleading_rate
        if misleading:
            options = [x for x in ("price", "price", "competitor") if x not in planted]
            stated = r.choice(options) if options else "other"
        if survey:
            t = c.request + r.randrange(300, 3 * DAY)
            if t <= self.H:
                primary = self._exit_option(c, stated)
                others = []
                for cause in planted:
                    if cause == stated:
                        continue
                    p = 0.85 if cause == trigger else 0.7
                    if r.random() < p:
                        others.append(self._exit_option(c, cause))
                others = [o for o in EXIT_REASON_OPTIONS if o in others and o != primary]
                comment = r.choice(nm.CAUSE_COMMENTS[stated]) if r.random() < 0.5 else None
                contact = c.active_contacts[0] if r.random() < 0.7 else \
                    r.choice(c.active_contacts)
                rid = self._response(c, self.survey_by_kind["exit"], t, contact, None, None)
                c.exits.append((t, (rid, primary, ";".join(others) or None, comment)))
        if feedback:
            fb = self._feedback(c, stated)
            c.base.feedback = fb
            if fb == "other" or r.random() < 0.35:
                c.base.comment = r.choice(nm.CAUSE_COMMENTS[stated])
            if c.addon is not None and c.addon.canceled_at == c.base.canceled_at:
                c.addon.feedback, c.addon.comment = c.base.feedback, c.base.comment

    def _exit_option(self, c: _C, cause: str) -> str:
        if cause == "other":
            return "other"
        if cause == "product_issues" and c.r.random() < 0.3:
            return "missing_features"
        return cat.EXIT_OPTION_BY_CAUSE[cause]

    def _feedback(self, c: _C, cause: str) -> str:
        if cause == "other":
            return "other"
        if cause == "product_issues" and c.r.random() < 0.4:
            return "missing_features"
        return cat.FEEDBACK_BY_CAUSE[cause]

    # 15. rows ------------------------------------------------------------------------
    def _emit(self, c: _C, out: Out) -> None:
        r = c.r
        H = self.H
        ts = self.cal.crm_ts
        aid = c.account_id
        crm = out.crm
        # account (owner changes and re-segmentation update it later)
        updated = c.acct_created
        segment, employees, owner = c.segment, c.employees, c.owner
        if r.random() < 0.08:
            t = c.start + r.randint(60, 500) * DAY
            if t <= H:
                pool = self._owners[(c.region, segment == "enterprise")]
                owner = r.choice(pool)
                updated = max(updated, self._worktime(c, t))
        if segment == "smb" and employees >= 150 and "poor_fit" not in c.causes \
                and r.random() < 0.2:
            t = c.start + r.randint(90, 500) * DAY
            if t <= H:
                segment, employees = "mid_market", int(employees * r.uniform(1.7, 2.5))
                updated = max(updated, self._worktime(c, t))
        updated = min(updated, H)
        crm["accounts"].append((aid, c.name, c.domain, c.industry, employees, segment,
                                c.region, owner, ts(c.acct_created), ts(updated), False))
        for ct in c.contacts:
            deleted = ct[6] is not None
            crm["contacts"].append((ct[0], aid, ct[3], ct[1], ct[2], ct[4], ts(ct[5]),
                                    ts(ct[6] if deleted else ct[5]), deleted))
        # deals: the original sale, expansions, a few lost upsells and deleted duplicates
        p = c.base.price
        annual = p.unit_amount * (12 // p.months)
        pct = c.base.coupon[2] if c.base.coupon else 0
        go_live_set = self._worktime(c, c.go_live) if c.go_live is not None else None
        deal_updated = c.closed_at
        if go_live_set is not None and go_live_set <= H:
            deal_updated = max(deal_updated, go_live_set)
        go_live = self.cal.day_str(c.go_live) if go_live_set is not None and \
            go_live_set <= H else None
        crm["deals"].append((self.deal_id(), aid, "closed_won",
                             c.seats * annual * (100 - pct) // 100, c.seats,
                             self.cal.day_str(c.promised), go_live, ts(c.closed_at),
                             ts(c.deal_created), ts(deal_updated), False))
        for _kind, at, added in c.deals:
            if at >= c.end1:
                continue
            closed = at - r.randrange(DAY, 10 * DAY)
            created = max(c.acct_created + HOUR, closed - r.randrange(5 * DAY, 30 * DAY))
            crm["deals"].append((self.deal_id(), aid, "closed_won", added * annual, added,
                                 None, None, ts(closed), ts(created), ts(closed), False))
        u = r.random()
        if u < 0.05:
            created = c.start + r.randint(30, 400) * DAY
            if created + 40 * DAY <= min(H, c.end1):
                added = max(1, c.seats // r.randint(3, 8))
                closed = created + r.randint(10, 40) * DAY
                crm["deals"].append((self.deal_id(), aid, "closed_lost", added * annual, added,
                                     None, None, ts(closed), ts(created), ts(closed), False))
        elif u < 0.08 and c.ended is None:
            created = H - r.randint(2, 60) * DAY
            if created > c.start:
                added = max(1, c.seats // r.randint(3, 8))
                crm["deals"].append((self.deal_id(), aid, "open", added * annual, added,
                                     None, None, None, ts(created), ts(created), False))
        elif u < 0.092:
            created = min(c.deal_created + r.randrange(HOUR, 3 * DAY), H - HOUR)
            gone = min(H, created + r.randrange(DAY, 20 * DAY))
            crm["deals"].append((self.deal_id(), aid, "open", c.seats * annual, c.seats,
                                 None, None, None, ts(created), ts(gone), True))
        # activities
        for t, kind in c.activities:
            logged = min(H, t + r.randrange(60, 2 * HOUR))
            deleted = r.random() < 0.003
            upd = min(H, logged + r.randrange(DAY, 30 * DAY)) if deleted else logged
            who = self._contact_at(c, t)[0] if r.random() < 0.85 else None
            crm["activities"].append((self.activity_id(), aid, who, kind, ts(t), ts(logged),
                                      ts(upd), deleted))
        # tickets
        for opened, cat_, pri, who, first, resolved, csat, csat_ts in c.tickets:
            if resolved is not None:
                closed = resolved + 4 * DAY
                status = "closed" if closed <= H else "solved"
                upd = max(closed if closed <= H else resolved, csat_ts or 0)
            else:
                status = "pending" if first is not None else "open"
                upd = first if first is not None else opened
            crm["tickets"].append((self.ticket_id(), aid, who, cat_, pri, status, ts(opened),
                                   ts(first) if first is not None else None,
                                   ts(resolved) if resolved is not None else None, csat,
                                   ts(opened), ts(upd), False))
        # usage snapshots
        for t, active, seats in c.snapshots:
            at = ts(t + r.randrange(900))
            crm["usage_snapshots"].append((aid, self.cal.day_str(t), active, seats, at, at,
                                           False))
        out.billing.append(c.billing)
        out.responses.extend(c.responses)
        out.exit_answers.extend(c.exits)
        if c.planted:
            subs = [s.id for s in (c.base, c.addon) if s is not None and s.ended_at is not None
                    and s.ended_at == c.ended]
            rest = [x for x in cat.CAUSE_IDS if x in c.planted and x != c.trigger]
            out.truth.append((aid, c.billing.id, ";".join(subs),
                              self.cal.day_str(c.request), self.cal.day_str(c.ended),
                              "true" if c.involuntary else "false",
                              ";".join([c.trigger, *rest]), c.trigger))

"""Word lists for company, people and free-text values of the sample business."""

from __future__ import annotations

FIRST_NAMES = (
    "Aisha", "Alejandro", "Amara", "Anders", "Ana", "Arjun", "Ben", "Bianca", "Carlos",
    "Chen", "Chloe", "Daniel", "Dmitri", "Elena", "Emeka", "Emma", "Fatima", "Felix",
    "Gabriel", "Grace", "Hana", "Hannah", "Hugo", "Ines", "Isaac", "Ivan", "Jade", "James",
    "Javier", "Jin", "Julia", "Kai", "Kenji", "Kwame", "Laura", "Leila", "Liam", "Lucas",
    "Maya", "Mei", "Miguel", "Mohammed", "Nadia", "Naomi", "Nina", "Noah", "Olivia",
    "Omar", "Oscar", "Pablo", "Priya", "Rafael", "Ravi", "Rosa", "Sara", "Sebastian",
    "Sofia", "Sven", "Tariq", "Thomas", "Valentina", "Wei", "Yara", "Yusuf", "Zoe",
)
LAST_NAMES = (
    "Abara", "Andersen", "Bakker", "Becker", "Bianchi", "Brown", "Castillo", "Chen",
    "Costa", "Dubois", "Dvorak", "Eriksson", "Fernandez", "Fischer", "Garcia", "Gonzalez",
    "Gupta", "Haddad", "Hansen", "Hoffmann", "Ibrahim", "Ivanova", "Jensen", "Johnson",
    "Kaur", "Kim", "Kowalski", "Kumar", "Larsen", "Lee", "Lopez", "Martin", "Meyer",
    "Moreau", "Mueller", "Nakamura", "Nguyen", "Novak", "Okafor", "Olsen", "Park",
    "Patel", "Perez", "Petrov", "Rossi", "Sanchez", "Santos", "Sato", "Schmidt", "Silva",
    "Singh", "Smith", "Suzuki", "Tanaka", "Taylor", "Thompson", "Torres", "Wagner",
    "Wang", "Williams", "Wilson", "Yamamoto", "Yilmaz", "Zhang",
)
COMPANY_HEADS = (
    "Acorn", "Alder", "Amber", "Anchor", "Apex", "Arbor", "Aspen", "Atlas", "Aurora",
    "Beacon", "Birch", "Blue", "Bright", "Brook", "Cedar", "Cinder", "Cobalt", "Copper",
    "Coral", "Crest", "Crimson", "Delta", "Ember", "Evergreen", "Falcon", "Fern", "Flint",
    "Fox", "Granite", "Harbor", "Hawk", "Helix", "Indigo", "Iron", "Jade", "Juniper",
    "Keystone", "Lark", "Linden", "Lumen", "Maple", "Meridian", "Moss", "Nimbus", "North",
    "Nova", "Oak", "Onyx", "Orbit", "Pine", "Prism", "Quarry", "Quartz", "Raven", "Ridge",
    "River", "Sage", "Silver", "Slate", "Spruce", "Stone", "Summit", "Tidal", "Timber",
    "Vale", "Vertex", "Willow", "Zenith",
)
COMPANY_TAILS = (
    "bay", "bridge", "brook", "crest", "dale", "field", "forge", "gate", "grove", "haven",
    "hill", "hurst", "lake", "light", "line", "mark", "mont", "peak", "point", "port",
    "ridge", "rock", "shore", "side", "spring", "stone", "vale", "view", "water", "wave",
    "well", "wood", "works", "yard",
)
INDUSTRIES = (
    ("Software", "Software"), ("Financial Services", "Capital"), ("Healthcare", "Health"),
    ("Retail", "Retail"), ("Manufacturing", "Manufacturing"), ("Education", "Learning"),
    ("Logistics", "Logistics"), ("Media", "Media"), ("Professional Services", "Partners"),
    ("Real Estate", "Properties"), ("Hospitality", "Hospitality"),
    ("Nonprofit", "Foundation"), ("Telecommunications", "Networks"), ("Energy", "Energy"),
    ("Construction", "Builders"), ("Insurance", "Insurance"),
)
INDUSTRY_WEIGHTS = (16, 9, 8, 8, 8, 6, 6, 5, 8, 4, 4, 3, 3, 3, 5, 4)
LEGAL_FORMS = {
    "na": ("Inc.", "LLC", "Corp.", ""),
    "emea": ("Ltd", "GmbH", "B.V.", "SAS", "AB", ""),
    "apac": ("Pty Ltd", "Pte. Ltd.", "K.K.", "Ltd", ""),
    "latam": ("S.A.", "Ltda.", "S.A. de C.V.", ""),
}
TLDS = {
    "na": ("com", "com", "com", "io", "co"),
    "emea": ("com", "co.uk", "de", "fr", "nl", "se", "io", "eu"),
    "apac": ("com", "com.au", "sg", "co.jp", "in", "io"),
    "latam": ("com", "com.br", "com.mx", "cl", "co"),
}
CONTACT_TITLES = (
    "Operations Manager", "Team Lead", "Project Manager", "IT Administrator",
    "Product Manager", "Customer Success Manager", "Analyst", "Engineering Manager",
    "Finance Manager", "Office Manager", "Marketing Manager", "Support Lead",
)
PRIMARY_TITLES = (
    "Head of Operations", "VP Operations", "Director of IT", "COO", "CTO",
    "Head of Customer Experience", "VP Engineering", "Director of Product",
)
PERSONAL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me")
BILLING_MAILBOXES = ("billing", "accounts", "finance", "ap", "invoices")

# Free text (exit survey, billing cancellation comment, NPS comments), by cause.
CAUSE_COMMENTS = {
    "poor_fit": ("We are too small for this plan.", "Not the right tool for a team our size.",
                 "Overkill for what we need."),
    "oversold": ("Implementation took far longer than we were promised.",
                 "The rollout date slipped again and again.",
                 "Sales promised things the product could not deliver."),
    "failed_adoption": ("The team never really started using it.",
                        "Hardly anyone logged in after the first weeks.",
                        "We paid for seats nobody used."),
    "product_issues": ("Too many bugs and outages.", "The product kept breaking.",
                       "Key features were missing or unreliable."),
    "poor_service": ("Support was unhelpful and rude.", "We felt badly treated by support.",
                     "Support did not care about our problems."),
    "slow_resolution": ("Support took weeks to fix our issues.",
                        "Tickets stayed open far too long.",
                        "Nobody answered our tickets for days."),
    "hassle": ("Billing mistakes every other month.", "Invoices were wrong and refunds slow.",
               "Too much hassle with billing."),
    "neglect": ("Nobody from your side ever checked in.",
                "We never heard from our account manager.", "We felt ignored."),
    "goals_unmet": ("We did not get the results we expected.",
                    "It did not help us reach our goals.", "Not enough value for us."),
    "price": ("Too expensive for our budget.", "The price went beyond what we can justify.",
              "Budget cuts, and the price is too high."),
    "competitor": ("We moved to another vendor.", "A competitor offered a better deal.",
                   "Switched to a tool our parent company uses."),
    "financial_distress": ("We are closing the business.", "Cash is too tight right now."),
    "other": ("Change of direction on our side.", "Internal reorganisation.",
              "Project ended."),
}
NPS_COMMENTS = {
    "promoter": ("Great product, keep it up.", "Our team relies on it every day.",
                 "Easy to use and reliable."),
    "passive": ("Good overall, a few rough edges.", "Does the job.",
                "Solid, but reporting could be better."),
    "detractor": ("We are not seeing the value we expected.",
                  "Not delivering on our goals.", "Hard to justify the cost so far."),
}
ADDON_CANCEL_COMMENTS = ("We stopped using the add-on.", "Not needed anymore.")

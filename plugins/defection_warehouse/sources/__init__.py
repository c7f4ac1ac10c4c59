"""Sources: the contracts of the CRM, billing and survey data, their extractors, and the
landing zone the extractors write to."""

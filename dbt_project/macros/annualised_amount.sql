{#-
    A recurring amount for one billing period expressed per year (x 12 for monthly
    prices, as is for yearly ones, scaled for other intervals and interval counts).
    For monthly and yearly prices this is an exact whole number, so summing these and
    dividing by 12 once gives an MRR that rounds exactly (no rounding drift from dividing
    every line by 12 first).
-#}
{% macro annualised_amount(amount, interval, interval_count) %}
    case {{ interval }}
        when 'month' then ({{ amount }})::numeric * 12 / ({{ interval_count }})
        when 'year' then ({{ amount }})::numeric / ({{ interval_count }})
        when 'week' then ({{ amount }})::numeric * 52 / ({{ interval_count }})
        when 'day' then ({{ amount }})::numeric * 365 / ({{ interval_count }})
    end
{% endmacro %}

{#- MRR in whole cents of a set of lines: their annualised amounts summed, / 12, rounded. -#}
{% macro mrr_from_annualised(annualised_column) %}
    round(sum({{ annualised_column }}) / 12)::bigint
{% endmacro %}

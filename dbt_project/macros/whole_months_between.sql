{#-
    Whole months from a start (timestamptz) to the first day of a month, in UTC: what
    age() counts, in integer arithmetic that stays cheap over millions of rows. A start
    during a month counts from the next month's first day; never below 0.

    month_index(day): months since year 0 of a date or timestamp (year * 12 + month).
    started_mid_month(started_at): 1 when the start is after its month's first instant.
    whole_months_between(started_at, month) combines them.
-#}
{% macro month_index(day) %}
    (extract(year from {{ day }}) * 12 + extract(month from {{ day }}))::int
{% endmacro %}

{% macro started_mid_month(started_at) %}
    (
        {{ started_at }} at time zone 'utc'
        > date_trunc('month', {{ started_at }} at time zone 'utc')
    )::int
{% endmacro %}

{% macro whole_months_between(started_at, month) %}
    greatest(
        0,
        {{ month_index(month) }}
        - {{ month_index(started_at ~ " at time zone 'utc'") }}
        - {{ started_mid_month(started_at) }}
    )
{% endmacro %}

{#-
    The end of the as-of date (midnight UTC of the following day) as a timestamptz: the
    instant the marts describe. Anything that ends at or before it has ended.
-#}
{% macro as_of_end_at() %}
    (({{ as_of_date() }} + 1)::timestamp at time zone 'utc')
{% endmacro %}

{#- numerator / denominator as numeric, null when the denominator is 0 or null. -#}
{% macro safe_ratio(numerator, denominator) %}
    (({{ numerator }})::numeric / nullif(({{ denominator }})::numeric, 0))
{% endmacro %}

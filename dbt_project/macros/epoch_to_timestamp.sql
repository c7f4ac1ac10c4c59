{#- Billing timestamps arrive as epoch seconds (UTC). -#}
{% macro epoch_to_timestamp(column) %}
    to_timestamp({{ column }})
{% endmacro %}

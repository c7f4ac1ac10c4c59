{#- Fails with the rows in which any of the columns is null, each with the names of those
    columns in null_columns. One query per model instead of one not_null test per column:
    each test is a node of its own, and dbt spends about 20 ms on a node before its query
    runs. Key columns are checked by unique_and_not_null. -#}
{% test not_null_columns(model, columns) %}
    select
        *,
        concat_ws(
            ', '
            {%- for column in columns %},
            case when {{ column }} is null then '{{ column }}' end
            {%- endfor %}
        ) as null_columns
    from {{ model }}
    where
        {%- for column in columns %}
        {% if not loop.first %}or {% endif %}{{ column }} is null
        {%- endfor %}
{% endtest %}

{#- A key (or an alternate key): fails with each key value that occurs more than once or
    has a null in any of its columns. One query, and one node, for what `unique` and
    `not_null` check in two each. For one column, attach it to the column; for several,
    attach it to the model with `columns`. -#}
{% test unique_and_not_null(model, column_name=none, columns=none) %}
    {%- set key = columns if columns else [column_name] %}
    select
        {{ key | join(', ') }},
        count(*) as occurrences
    from {{ model }}
    group by {{ key | join(', ') }}
    having
        count(*) > 1
        {%- for column in key %}
        or {{ column }} is null
        {%- endfor %}
{% endtest %}

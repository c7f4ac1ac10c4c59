{#- Fails when a month is missing between the first and the last month of the model. -#}
{% test months_without_gaps(model, month_column) %}
    with

    bounds as (
        select
            min({{ month_column }}) as first_month,
            max({{ month_column }}) as last_month
        from {{ model }}
    ),

    expected as (
        select generate_series(first_month, last_month, interval '1 month')::date as month
        from bounds
        where first_month is not null
    )

    select expected.month as missing_month
    from expected
    left join {{ model }} as actual
        on expected.month = actual.{{ month_column }}
    where actual.{{ month_column }} is null
{% endtest %}

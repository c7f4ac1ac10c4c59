{#-
    Raw tables keep every version that was landed (one row per key and batch). Staging
    keeps the newest: the latest change timestamp, then the latest batch.
-#}
{% macro latest_version(relation, key_columns, order_by) %}
    select *
    from (
        select
            *,
            row_number() over (
                partition by {{ key_columns | join(', ') }}
                order by {{ order_by }}
            ) as _version_rank
        from {{ relation }}
    ) as versions
    where _version_rank = 1
{% endmacro %}

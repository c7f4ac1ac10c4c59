{#-
    Raw tables keep every version that was landed (one row per key and batch). Staging
    keeps the newest, ranked by `order_by` (the latest change time, then the latest
    batch). `where` limits the raw rows considered (incremental staging passes the rows
    loaded since its last build).
-#}
{% macro latest_version(relation, key_columns, order_by, where=none) %}
    select *
    from (
        select
            *,
            row_number() over (
                partition by {{ key_columns | join(', ') }}
                order by {{ order_by }}
            ) as _version_rank
        from {{ relation }}
        {%- if where %}
        where {{ where }}
        {%- endif %}
    ) as versions
    where _version_rank = 1
{% endmacro %}

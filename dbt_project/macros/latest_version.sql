{#-
    Raw tables keep every version that was landed (one row per key and batch). Staging
    keeps the newest: the latest change timestamp, then the latest batch. `where` limits
    the keys considered (incremental staging passes the keys a night touched).
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

{#-
    Raw tables keep every version that was landed (one row per key and batch). Staging
    keeps the newest: the latest change timestamp, then the latest batch. `where` limits
    the keys considered (incremental staging passes the keys a night touched).
    one_batch: the rows `where` selects all come from one batch, which holds a key once
    (the contract's key is key and batch, and the raw quality gate checks it per batch),
    so every row is its key's newest and the rows are not sorted to rank them.
-#}
{% macro latest_version(relation, key_columns, order_by, where=none, one_batch=false) %}
    {%- if one_batch %}
    select *
    from {{ relation }}
    {%- if where %}
    where {{ where }}
    {%- endif %}
    {%- else %}
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
    {%- endif %}
{% endmacro %}

{#-
    Staging of a large incremental source as an incremental table: the newest version of
    every key, like latest_version(), but a night only reads the raw rows loaded since the
    table was last built (the loader stamps every row with its load time, _loaded_at) and
    recomputes the newest version of the keys those rows touch, from every batch of raw,
    so a late-loaded older day never wins over a newer version.

    A batch that was loaded again since the last build (a rerun or backfill of a day
    already loaded) may have dropped versions the table holds: the pre-hook
    reset_if_batches_replaced() then empties the table, and the same query rebuilds it
    from all of raw. `--full-refresh` rebuilds it as well.
-#}
{% macro incremental_latest_version(relation, key_columns, order_by) %}
    {%- if is_incremental() %}
        {%- set keys = key_columns | join(', ') %}
        {%- set touched -%}
            ({{ keys }}) in (
                select {{ keys }}
                from {{ relation }}
                where _loaded_at > (
                    select coalesce(max(loaded_at), '-infinity'::timestamptz) from {{ this }}
                )
            )
        {%- endset %}
        {{ latest_version(relation, key_columns, order_by, where=touched) }}
    {%- else %}
        {{ latest_version(relation, key_columns, order_by) }}
    {%- endif %}
{% endmacro %}


{#- The configuration every incremental staging table shares: delete+insert on its key
    (a unique index: a night's delete finds its rows fast, and no key can be written
    twice), the reset above, and data tests scoped to the rows of the newest build
    (built_at, indexed; see get_where_subquery). extra_indexes: more indexes the models
    downstream look rows up by. -#}
{% macro incremental_staging_config(key_columns, source_name, extra_indexes=[]) %}
    {{ config(
        materialized='incremental',
        unique_key=key_columns,
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': key_columns, 'unique': True}, {'columns': ['loaded_at']},
                 {'columns': ['built_at']}] + extra_indexes,
        meta={'test_scope': 'newest_build'},
        pre_hook="{{ reset_if_batches_replaced('" ~ source_name ~ "') }}"
    ) }}
{% endmacro %}


{#- Pre-hook of the incremental staging tables: empty the table when a load of the
    source replaced rows (status loaded, rows_replaced > 0) after the newest load the
    table holds. load_audit.loaded_at is the load transaction's time, as _loaded_at. -#}
{% macro reset_if_batches_replaced(source_name) %}
    {%- if is_incremental() -%}
    delete from {{ this }}
    where exists (
        select 1
        from {{ source('raw_meta', 'load_audit') }} as audit
        where
            audit.source = '{{ source_name }}'
            and audit.status = 'loaded'
            and audit.rows_replaced > 0
            and audit.loaded_at > (select max(loaded_at) from {{ this }})
    )
    {%- else -%}
    select 1
    {%- endif -%}
{% endmacro %}


{#- The rows of `cte` that differ from the row the table holds for their key (or are new),
    compared on every column but the load and build metadata: a source landed in full
    every night rewrites only its changed rows, so loaded_at and built_at move only when
    a row's content changed, and the models downstream can tell which keys changed. -#}
{% macro only_changed_rows(cte, key_columns) %}
    {%- if is_incremental() %}
        {%- set metadata = ['batch_id', 'logical_date', 'loaded_at', 'built_at'] %}
        {%- set compared = [] %}
        {%- for column in adapter.get_columns_in_relation(this) %}
            {%- if column.name not in metadata and column.name not in key_columns %}
                {%- do compared.append(column.name) %}
            {%- endif %}
        {%- endfor %}
    select {{ cte }}.*
    from {{ cte }}
    left join {{ this }} as existing
        on
        {%- for key in key_columns %}
            {% if not loop.first %}and {% endif %}{{ cte }}.{{ key }} = existing.{{ key }}
        {%- endfor %}
    where
        existing.{{ key_columns[0] }} is null
        or ({{ cte }}.{{ compared | join(', ' ~ cte ~ '.') }})
        is distinct from (existing.{{ compared | join(', existing.') }})
    {%- else %}
    select * from {{ cte }}
    {%- endif %}
{% endmacro %}

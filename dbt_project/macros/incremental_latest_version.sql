{#-
    Staging of a large incremental source as an incremental table: the newest version of
    every key, like latest_version(), but a night only reads the raw rows loaded since the
    table was last built (the loader stamps every row with its load time, _loaded_at, and
    indexes it with BRIN, so those rows are found without reading all of raw).

    On an ordinary night every batch loaded since the last build is for a later day than
    every batch loaded before, so a new row outranks the older versions of its key unless
    the row the table holds has a newer change time (the order_by column ranked before
    _logical_date, e.g. updated_at): the night compares its newest rows with the table's
    rows and never reads the older batches. When a batch for an earlier day arrives late
    (a backfill), the newest version of every key the night touched is recomputed from
    every batch of raw instead, so a late-loaded older day never wins.

    A batch that was loaded again since the last build (a rerun or backfill of a day
    already loaded) may have dropped versions the table holds: the pre-hook
    reset_if_batches_replaced() then empties the table, and the same query rebuilds it
    from all of raw. `--full-refresh` rebuilds it as well.

    full_snapshot: every batch of the source holds every key (the billing API lists all
    customers each night). On an ordinary night a new row whose source columns equal
    those of the same key in the batch the table's newest rows came from (its max
    loaded_at, which all rows of that load share) is left out before it is transformed:
    the table already holds what it would become, since that batch was built and its
    changed rows written. Worth it where the transform is costly: stg_billing__customers
    pseudonymizes every customer's e-mail and name, 0.66 s to 0.29 s at 100,000 customers;
    for the subscriptions, whose transform is cheap, it saved nothing.
-#}
{% macro incremental_latest_version(relation, key_columns, order_by, full_snapshot=false) %}
    {%- if is_incremental() and execute %}
        {%- set keys = key_columns | join(', ') %}
        {%- set state = incremental_load_state(relation) %}
        {%- set since = "'" ~ state['since'] ~ "'::timestamptz" %}
        {%- set ranked = [] %}
        {%- for term in order_by.split(',') %}
            {%- do ranked.append(term.split()[0]) %}
        {%- endfor %}
        {%- set ranked_first = ranked[0] %}
        {%- if state['in_order'] and ranked_first == '_logical_date' and full_snapshot %}
            {%- set compared = [] %}
            {%- for column in adapter.get_columns_in_relation(relation) %}
                {%- if not column.name.startswith('_') %}
                    {%- do compared.append(column.name) %}
                {%- endif %}
            {%- endfor %}
    -- materialized, so that the few rows left are what the model transforms
    with unchanged_left_out as materialized (
        select newest.*
        from (
            {{ latest_version(relation, key_columns, order_by, where='_loaded_at > ' ~ since,
                one_batch=state['one_batch']) }}
        ) as newest
        where not exists (
            select 1
            from {{ relation }} as held_batch
            where
                held_batch._loaded_at = {{ since }}
            {%- for key in key_columns %}
                and held_batch.{{ key }} = newest.{{ key }}
            {%- endfor %}
                and (held_batch.{{ compared | join(', held_batch.') }})
                is not distinct from (newest.{{ compared | join(', newest.') }})
        )
    )
    select * from unchanged_left_out
        {%- elif state['in_order'] and ranked_first == '_logical_date' %}
    {{ latest_version(relation, key_columns, order_by, where='_loaded_at > ' ~ since,
                one_batch=state['one_batch']) }}
        {%- elif state['in_order'] and ranked[1:2] == ['_logical_date'] %}
    select newest.*
    from (
        {{ latest_version(relation, key_columns, order_by, where='_loaded_at > ' ~ since,
                one_batch=state['one_batch']) }}
    ) as newest
    left join {{ this }} as existing
        on
        {%- for key in key_columns %}
            {% if not loop.first %}and {% endif %}newest.{{ key }} = existing.{{ key }}
        {%- endfor %}
    -- the row the table holds wins when its change time ranks first (nulls first, as in
    -- `order by ... desc`); on a tie the new row, of a later day, wins
    where
        existing.{{ key_columns[0] }} is null
        or not coalesce(
            existing.{{ ranked_first }} is null and newest.{{ ranked_first }} is not null
            or existing.{{ ranked_first }} > newest.{{ ranked_first }},
            false
        )
        {%- else %}
            {%- set touched -%}
            ({{ keys }}) in (
                select {{ keys }}
                from {{ relation }}
                where _loaded_at > {{ since }}
            )
            {%- endset %}
    {{ latest_version(relation, key_columns, order_by, where=touched) }}
        {%- endif %}
    {%- else %}
    {{ latest_version(relation, key_columns, order_by) }}
    {%- endif %}
{% endmacro %}


{#- Fixed when the model is compiled, so the planner sees literals: `since`, the newest
    load the table holds (its max loaded_at), and `in_order`, whether every load of the
    source table since then is for a later day than every load before it (from the load
    audit, whose loaded_at is the load transaction's time, as the rows' _loaded_at).
    `one_batch`: the rows loaded since `since` are all of one batch (one source and
    logical date; a batch loaded again replaces its rows, which resets the table).
    A model is compiled before its pre-hooks run: when reset_if_batches_replaced() is
    about to empty the table, `since` is -infinity, so the night reads all of raw. -#}
{% macro incremental_load_state(relation) %}
    {%- set query -%}
        with held as (
            select max(loaded_at) as loaded_at from {{ this }}
        ),
        audit as (
            select
                audit.logical_date,
                audit.batch_id,
                audit.loaded_at > coalesce(held.loaded_at, '-infinity') as is_new
            from {{ source('raw_meta', 'load_audit') }} as audit
            cross join held
            where
                audit.source = '{{ relation.schema | replace("raw_", "", 1) }}'
                and audit.status = 'loaded'
        ),
        resets as (
            select
                held.loaded_at is null
                or {{ batches_replaced_after(
                    relation.schema | replace("raw_", "", 1), 'held.loaded_at') }} as resets
            from held
        )
        select
            case
                when resets.resets then '-infinity'
                else (select loaded_at from held)::text
            end,
            resets.resets or coalesce(
                (select min(logical_date) from audit where is_new)
                > (select max(logical_date) from audit where not is_new),
                true
            ),
            not resets.resets and (select count(distinct batch_id) from audit where is_new) = 1
        from resets
    {%- endset -%}
    {%- set row = run_query(query).rows[0] -%}
    {{ return({'since': row[0], 'in_order': row[1], 'one_batch': row[2]}) }}
{% endmacro %}


{#- The configuration every incremental staging table shares: delete+insert on its key
    (a unique index: a night's delete finds its rows fast, and no key can be written
    twice), the reset above, and an index on built_at (the rows a build wrote, which the
    models downstream read incrementally). extra_indexes: more indexes the models
    downstream look rows up by. -#}
{% macro incremental_staging_config(key_columns, source_name, extra_indexes=[]) %}
    {{ config(
        materialized='incremental',
        unique_key=key_columns,
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[{'columns': key_columns, 'unique': True}, {'columns': ['loaded_at']},
                 {'columns': ['built_at']}] + extra_indexes,
        pre_hook="{{ reset_if_batches_replaced('" ~ source_name ~ "') }}"
    ) }}
{% endmacro %}


{#- Pre-hook of the incremental staging tables: empty the table when a load of the
    source replaced rows after the newest load the table holds. -#}
{% macro reset_if_batches_replaced(source_name) %}
    {%- if is_incremental() -%}
    delete from {{ this }}
    where {{ batches_replaced_after(source_name, '(select max(loaded_at) from ' ~ this ~ ')') }}
    {%- else -%}
    select 1
    {%- endif -%}
{% endmacro %}


{#- SQL condition: a load of the source replaced rows (status loaded, rows_replaced > 0)
    after `loaded_at`. The reset pre-hook and incremental_load_state() (which must
    foresee the reset, as a model is compiled before its pre-hooks run) share it.
    load_audit.loaded_at is the load transaction's time, as the rows' _loaded_at. -#}
{% macro batches_replaced_after(source_name, loaded_at) -%}
    exists (
        select 1
        from {{ source('raw_meta', 'load_audit') }} as replacing
        where
            replacing.source = '{{ source_name }}'
            and replacing.status = 'loaded'
            and replacing.rows_replaced > 0
            and replacing.loaded_at > {{ loaded_at }}
    )
{%- endmacro %}


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


{#- Pre-hook of an incremental model keyed on the rows of one incremental upstream model:
    empty the table when every row the upstream holds was written after the table's
    last build (the upstream was rebuilt: a day loaded again, or a full refresh of it
    alone), so rows whose upstream rows are gone go too and everything is built again. -#}
{% macro reset_if_source_rebuilt(upstream) %}
    {%- if is_incremental() -%}
    delete from {{ this }}
    where
        (select min(built_at) from {{ upstream }})
        > (select max(built_at) from {{ this }})
    {%- else -%}
    select 1
    {%- endif -%}
{% endmacro %}

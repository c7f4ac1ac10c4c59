{#-
    dbt-postgres's get_columns_in_relation, read from pg_catalog instead of the
    information_schema.columns view. dbt asks for a relation's columns several times per
    incremental model (the insert's column list, the schema-change check, the comments);
    the view plans and filters every column of the database, 2-10 ms a lookup against
    about 1 ms here, some 85 lookups a night. The columns, their order and the values
    returned are those of information_schema.columns: the same relation kinds (not
    materialized views), the same privilege rule, and its own functions for lengths,
    precision and scale. tests/test_dbt_runner.py compares the two on every relation
    of a built warehouse.
-#}
{% macro postgres__get_columns_in_relation(relation) -%}
    {% call statement('get_columns_in_relation', fetch_result=True) %}
        select
            column_name,
            data_type,
            character_maximum_length,
            numeric_precision,
            numeric_scale
        from ({{ catalog_columns_query() }}) as catalog
        where
            table_name = '{{ relation.identifier }}'
            {% if relation.schema %}
            and table_schema = '{{ relation.schema }}'
            {% endif %}
        order by ordinal_position
    {% endcall %}
    {% set table = load_result('get_columns_in_relation').table %}
    {{ return(sql_convert_columns_in_relation(table)) }}
{%- endmacro %}


{#- Every column information_schema.columns shows: the five columns dbt reads, and its
    schema, relation and position (PostgreSQL pushes a filter on them into pg_class's
    name index). -#}
{% macro catalog_columns_query() -%}
    select
        a.attname::text as column_name,
        (
            case
                when t.typtype = 'd'
                    then case
                        when bt.typelem <> 0 and bt.typlen = -1 then 'ARRAY'
                        when btn.nspname = 'pg_catalog' then format_type(t.typbasetype, null)
                        else 'USER-DEFINED'
                    end
                when t.typelem <> 0 and t.typlen = -1 then 'ARRAY'
                when tn.nspname = 'pg_catalog' then format_type(a.atttypid, null)
                else 'USER-DEFINED'
            end
        )::text as data_type,
        information_schema._pg_char_max_length(
            information_schema._pg_truetypid(a.*, t.*), information_schema._pg_truetypmod(a.*, t.*)
        )::int as character_maximum_length,
        information_schema._pg_numeric_precision(
            information_schema._pg_truetypid(a.*, t.*), information_schema._pg_truetypmod(a.*, t.*)
        )::int as numeric_precision,
        information_schema._pg_numeric_scale(
            information_schema._pg_truetypid(a.*, t.*), information_schema._pg_truetypmod(a.*, t.*)
        )::int as numeric_scale,
        n.nspname::text as table_schema,
        c.relname::text as table_name,
        a.attnum::int as ordinal_position
    from pg_catalog.pg_attribute as a
    inner join pg_catalog.pg_class as c on a.attrelid = c.oid
    inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid
    inner join pg_catalog.pg_type as t on a.atttypid = t.oid
    inner join pg_catalog.pg_namespace as tn on t.typnamespace = tn.oid
    left join pg_catalog.pg_type as bt on t.typtype = 'd' and t.typbasetype = bt.oid
    left join pg_catalog.pg_namespace as btn on bt.typnamespace = btn.oid
    where
        a.attnum > 0
        and not a.attisdropped
        and c.relkind in ('r', 'v', 'f', 'p')
        and (
            pg_catalog.pg_has_role(c.relowner, 'USAGE')
            or pg_catalog.has_column_privilege(
                c.oid, a.attnum, 'SELECT, INSERT, UPDATE, REFERENCES'
            )
        )
{%- endmacro %}

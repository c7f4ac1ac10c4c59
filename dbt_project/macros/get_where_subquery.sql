{#-
    Data tests of an incremental table that sets meta.test_scope = 'newest_build' check
    only the rows written by the table's newest build: on a full refresh that is every
    row, on a night only the rows the night rewrote. Rows of earlier nights were tested
    when they were written and have not changed since, and a unique index on the table's
    key (incremental_staging_config) keeps every key unique across all rows. A test with
    its own `where` keeps it.

    When the table was built in this invocation (dbt build runs a test only after its
    model succeeded), its newest rows are those stamped with this invocation's
    build_stamp(), none if the night changed nothing; otherwise (dbt test) they are the
    rows of its latest built_at.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if not where and model.get('attached_node') -%}
        {%- set tested = graph.nodes.get(model.attached_node) -%}
        {%- if tested and tested.config.meta.get('test_scope') == 'newest_build' -%}
            {#- a literal, looked up when the test runs: with a subquery the planner
                cannot tell how few rows the newest build wrote and scans the table -#}
            {%- set newest = none -%}
            {%- if model.attached_node in selected_resources -%}
                {%- set newest = run_started_at.isoformat() -%}
            {%- elif execute -%}
                {%- set newest = run_query(
                    'select max(built_at)::text from ' ~ relation).columns[0].values()[0] -%}
            {%- endif -%}
            {%- set where -%}
                {%- if newest -%}
                built_at = '{{ newest }}'::timestamptz
                {%- else -%}
                built_at = (select max(built_at) from {{ relation }})
                {%- endif -%}
            {%- endset -%}
        {%- endif -%}
    {%- endif -%}
    {%- if where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}


{#- When dbt wrote a row: the invocation's start time, shared by every row one build
    writes. -#}
{% macro build_stamp() -%}
    '{{ run_started_at.isoformat() }}'::timestamptz
{%- endmacro %}

{# Select from a loader table that may not exist yet: the table, or no rows with the given columns. #}
{#
    For operational tables the loader creates only on some paths, e.g. raw_fhir.request_log
    (written by HTTP extraction, absent after file loads). Pass the source() relation and the
    table's columns as [name, SQL type] pairs, so the staging model keeps its shape:

        {{ loader_optional_source(source('fhir', 'request_log'), [['run_id', 'varchar'], ...]) }}

    Like fhir_optional_source (which knows the raw FHIR table contract), the table is looked up
    only when dbt executes with introspection; unit tests and `compile --no-introspect` read
    the source as is.
#}
{% macro loader_optional_source(relation, columns) -%}
    {%- set relation_exists = true -%}
    {%- if execute and flags.INTROSPECT and not relation.is_cte -%}
        {%- set relation_exists = load_relation(relation) is not none -%}
    {%- endif -%}
    {%- if relation_exists -%}
        select * from {{ relation }}
    {%- else -%}
        select
            {%- for name, data_type in columns %}
            cast(null as {{ data_type }}) as {{ name }}{{ "," if not loop.last }}
            {%- endfor %}
        where 1 = 0
    {%- endif -%}
{%- endmacro %}

{# Join clause: one row per element of a JSON array (DuckDB json_each / Snowflake lateral flatten). #}
{#
    Use right after a from/join item; then read the element with flattened_value(alias) and its
    zero-based position with flattened_index(alias):

        from observations
        {{ flatten_json_array('observations.resource', 'component', 'components') }}

    outer=true keeps parent rows whose array is empty or missing (with null elements).
#}
{% macro flatten_json_array(column, path, alias, outer=false) -%}
    {{ return(adapter.dispatch('flatten_json_array', 'fhir_elt')(column, path, alias, outer)) }}
{%- endmacro %}

{% macro default__flatten_json_array(column, path, alias, outer=false) -%}
    {{ exceptions.raise_compiler_error('flatten_json_array is not implemented for ' ~ target.type) }}
{%- endmacro %}

{% macro duckdb__flatten_json_array(column, path, alias, outer=false) -%}
    {%- if outer -%}
        left join lateral json_each({{ column }}, '$.{{ path }}') as {{ alias }} on true
    {%- else -%}
        cross join lateral json_each({{ column }}, '$.{{ path }}') as {{ alias }}
    {%- endif -%}
{%- endmacro %}

{% macro snowflake__flatten_json_array(column, path, alias, outer=false) -%}
    {%- if outer and target.name == 'fakesnow' -%}
        {#- fakesnow ignores outer => true (see notes/snowflake-without-an-account.md) -#}
        left join lateral flatten(input => {{ fhir_elt.snowflake_variant_path(column, path) }}) as {{ alias }} on true
    {%- elif outer -%}
        , lateral flatten(input => {{ fhir_elt.snowflake_variant_path(column, path) }}, outer => true) as {{ alias }}
    {%- else -%}
        , lateral flatten(input => {{ fhir_elt.snowflake_variant_path(column, path) }}) as {{ alias }}
    {%- endif -%}
{%- endmacro %}

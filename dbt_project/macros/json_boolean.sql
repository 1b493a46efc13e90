{# A JSON/VARIANT value at a path as a boolean (null when absent or not a boolean). #}
{% macro json_boolean(column, path) -%}
    {{ return(adapter.dispatch('json_boolean', 'fhir_elt')(column, path)) }}
{%- endmacro %}

{% macro default__json_boolean(column, path) -%}
    cast({{ fhir_elt.json_string(column, path) }} as boolean)
{%- endmacro %}

{% macro duckdb__json_boolean(column, path) -%}
    try_cast(json_extract_string({{ column }}, '$.{{ path }}') as boolean)
{%- endmacro %}

{% macro snowflake__json_boolean(column, path) -%}
    try_to_boolean({{ fhir_elt.snowflake_variant_path(column, path) }}::string)
{%- endmacro %}

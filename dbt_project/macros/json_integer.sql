{# A JSON/VARIANT value at a path as an integer (FHIR integer / unsignedInt / positiveInt). #}
{% macro json_integer(column, path) -%}
    {{ return(adapter.dispatch('json_integer', 'fhir_elt')(column, path)) }}
{%- endmacro %}

{% macro default__json_integer(column, path) -%}
    cast({{ fhir_elt.json_string(column, path) }} as integer)
{%- endmacro %}

{% macro duckdb__json_integer(column, path) -%}
    try_cast(json_extract_string({{ column }}, '$.{{ path }}') as integer)
{%- endmacro %}

{% macro snowflake__json_integer(column, path) -%}
    try_to_number({{ fhir_elt.snowflake_variant_path(column, path) }}::string)
{%- endmacro %}

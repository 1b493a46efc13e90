{# A JSON/VARIANT value at a path as a double (decimals in FHIR JSON are numbers). #}
{% macro json_number(column, path) -%}
    {{ return(adapter.dispatch('json_number', 'fhir_elt')(column, path)) }}
{%- endmacro %}

{% macro default__json_number(column, path) -%}
    cast({{ fhir_elt.json_string(column, path) }} as double precision)
{%- endmacro %}

{% macro duckdb__json_number(column, path) -%}
    try_cast(json_extract_string({{ column }}, '$.{{ path }}') as double)
{%- endmacro %}

{% macro snowflake__json_number(column, path) -%}
    try_to_double({{ fhir_elt.snowflake_variant_path(column, path) }}::string)
{%- endmacro %}

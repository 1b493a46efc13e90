{# A JSON/VARIANT value at a path (written once, e.g. `name[0].family`) as a string. #}
{% macro json_string(column, path) -%}
    {{ return(adapter.dispatch('json_string', 'fhir_elt')(column, path)) }}
{%- endmacro %}

{% macro default__json_string(column, path) -%}
    json_extract_string({{ column }}, '$.{{ path }}')
{%- endmacro %}

{% macro duckdb__json_string(column, path) -%}
    json_extract_string({{ column }}, '$.{{ path }}')
{%- endmacro %}

{% macro snowflake__json_string(column, path) -%}
    {{ fhir_elt.snowflake_variant_path(column, path) }}::string
{%- endmacro %}

{# A JSON (DuckDB) / VARIANT (Snowflake) sub-document at a path, e.g. all codings of a concept. #}
{% macro json_element(column, path) -%}
    {{ return(adapter.dispatch('json_element', 'fhir_elt')(column, path)) }}
{%- endmacro %}

{% macro default__json_element(column, path) -%}
    {{ exceptions.raise_compiler_error('json_element is not implemented for ' ~ target.type) }}
{%- endmacro %}

{% macro duckdb__json_element(column, path) -%}
    json_extract({{ column }}, '$.{{ path }}')
{%- endmacro %}

{% macro snowflake__json_element(column, path) -%}
    {{ fhir_elt.snowflake_variant_path(column, path) }}
{%- endmacro %}

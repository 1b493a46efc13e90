{# A FHIR date at a path as a date (null if partial, e.g. "1980" or "1980-04", or invalid). #}
{% macro json_date(column, path) -%}
    {{ return(adapter.dispatch('json_date', 'fhir_elt')(column, path)) }}
{%- endmacro %}

{% macro default__json_date(column, path) -%}
    cast({{ fhir_elt.json_string(column, path) }} as date)
{%- endmacro %}

{% macro duckdb__json_date(column, path) -%}
    try_cast(json_extract_string({{ column }}, '$.{{ path }}') as date)
{%- endmacro %}

{% macro snowflake__json_date(column, path) -%}
    {%- if target.name == 'fakesnow' -%}
        to_date({{ fhir_elt.snowflake_variant_path(column, path) }}::string)
    {%- else -%}
        {#- an explicit format: without one Snowflake reads an all-digit "1980" as epoch seconds -#}
        try_to_date({{ fhir_elt.snowflake_variant_path(column, path) }}::string, 'YYYY-MM-DD')
    {%- endif -%}
{%- endmacro %}
